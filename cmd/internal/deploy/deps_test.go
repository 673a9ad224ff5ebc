package deploy_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/eventmesh/eventmesh"

// The packages watched: each may be linked only by the binaries whose row
// in mayLink names it. A path stands for itself and every package below it.
const (
	natsServer    = "github.com/nats-io/nats-server/v2" // the embedded server
	embedded      = module + "/streams/embedded"
	sqlite        = "modernc.org/sqlite" // the archive store, the SQL source
	pgx           = "github.com/jackc/pgx"
	connectorTest = module + "/connector/connectortest" // the Connector test double (eventmesh demo)
	harness       = module + "/cmd/internal/harness"    // chaos and bench harness
	bench         = module + "/cmd/internal/bench"      // eventmesh bench
	chromedp      = "github.com/chromedp"               // test-only libraries: no binary
	kfake         = "github.com/twmb/franz-go/pkg/kfake"
	pstest        = "cloud.google.com/go/pubsub/v2/pstest"
	bridgeTest    = module + "/consumers/bridge/bridgetest" // the bridge tests' proxy and certificates: no binary
	// jsm.go's advisory types: no binary. Importing them parses a text
	// template per advisory type at start-up and links YAML and JSON
	// schemas, about 1 MB of peak RSS in every consumer binary, for the
	// two fields of the max-deliveries advisory the runtime reads.
	jsm = "github.com/nats-io/jsm.go"
)

var watched = []string{natsServer, embedded, sqlite, pgx, connectorTest, harness, bench, chromedp, kfake, pstest, bridgeTest, jsm}

// mayLink is, for every binary (a main package in cmd/<name>), which of
// the watched packages it may link: each binary links only what it runs.
// A binary missing from this table fails the test; add it with what it
// runs. bridge and console are planned: their rows hold from their first
// commit.
var mayLink = map[string][]string{
	"eventmesh":  {natsServer, embedded, sqlite, pgx, connectorTest, harness, bench},
	"producer":   {sqlite, pgx}, // the SQL event-table source
	"archiver":   {sqlite, pgx}, // the archive store
	"console":    {sqlite, pgx}, // reads the archive store
	"webhook":    {},
	"autoaccept": {},
	"bridge":     {},
}

// mustLink are packages the binaries do link: were the listing broken or
// a path above misspelt, every check would pass without them.
var mustLink = map[string][]string{
	"eventmesh": {natsServer, embedded, sqlite, pgx},
	"archiver":  {sqlite, pgx},
	"console":   {sqlite, pgx},
}

// Each binary links only what it runs: the NATS server only in the
// all-in-one eventmesh (which embeds one), the SQL drivers only where a
// store is opened, test doubles and harnesses only in eventmesh (demo,
// bench), test-only libraries nowhere.
func TestEachBinaryLinksOnlyWhatItRuns(t *testing.T) {
	deps := binaryDeps(t)
	if len(deps) == 0 {
		t.Fatal("no main package under cmd/")
	}
	for b, pkgs := range deps {
		t.Run(b, func(t *testing.T) {
			allowed, known := mayLink[b]
			if !known {
				t.Fatalf("cmd/%s is not in mayLink: add it with the watched packages it may link", b)
			}
			if len(pkgs) < 10 {
				t.Fatalf("%s links %d packages: %q", b, len(pkgs), pkgs)
			}
			for _, w := range watched {
				var linked []string
				for _, p := range pkgs {
					if within(p, w) {
						linked = append(linked, p)
					}
				}
				switch {
				case len(linked) > 0 && !slices.Contains(allowed, w):
					if len(linked) > 3 {
						linked = append(linked[:3], "…")
					}
					t.Errorf("%s links %s: %s", b, w, strings.Join(linked, ", "))
				case len(linked) == 0 && slices.Contains(mustLink[b], w):
					t.Errorf("%s links no %s: the dependency listing is broken (%d packages)", b, w, len(pkgs))
				}
			}
		})
	}
	for b := range mustLink {
		if _, ok := deps[b]; !ok {
			t.Errorf("no main package cmd/%s", b)
		}
	}
}

// within reports whether pkg is path or a package below it.
func within(pkg, path string) bool {
	return pkg == path || strings.HasPrefix(pkg, path+"/")
}

// binaryDeps lists, with one go list, every main package under cmd/ (by
// its path below cmd/) with the packages its binary is built from, built
// as the Dockerfile builds it (CGO_ENABLED=0, tests excluded).
func binaryDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.Name}} {{.ImportPath}} {{join .Deps \" \"}}", "./cmd/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list ./cmd/...: %v\n%s", err, stderr)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "main" {
			continue
		}
		name, ok := strings.CutPrefix(f[1], module+"/cmd/")
		if !ok {
			t.Fatalf("go list: main package %s outside %s/cmd", f[1], module)
		}
		deps[name] = f[2:]
	}
	return deps
}
