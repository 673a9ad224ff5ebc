package deploy_test

import (
	"os/exec"
	"strings"
	"testing"
)

const (
	natsServer = "github.com/nats-io/nats-server/v2"
	embedded   = "github.com/eventmesh/eventmesh/streams/embedded"
)

// Only eventmesh links the NATS server (it embeds one); the separate
// binaries run against an external server and stay small.
func TestOnlyEventmeshLinksNATSServer(t *testing.T) {
	for _, b := range binaries {
		t.Run(b, func(t *testing.T) {
			deps := goListDeps(t, "./cmd/"+b)
			var server, emb []string
			for _, d := range deps {
				if d == natsServer || strings.HasPrefix(d, natsServer+"/") {
					server = append(server, d)
				}
				if d == embedded || strings.HasPrefix(d, embedded+"/") {
					emb = append(emb, d)
				}
			}
			if b == "eventmesh" {
				// The check below can fail: the all-in-one binary does link it.
				if len(server) == 0 || len(emb) == 0 {
					t.Fatalf("eventmesh links neither %s nor %s: the dependency listing is broken (%d packages)", natsServer, embedded, len(deps))
				}
				return
			}
			if len(server) > 0 {
				t.Errorf("%s links the NATS server: %s", b, strings.Join(server, ", "))
			}
			if len(emb) > 0 {
				t.Errorf("%s imports %s", b, strings.Join(emb, ", "))
			}
		})
	}
}

// goListDeps lists the packages pkg's binary is built from (tests excluded).
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test=false", "-f", "{{.ImportPath}}", pkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps %s listed %d packages: %q", pkg, len(deps), deps)
	}
	return deps
}
