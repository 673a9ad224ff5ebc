package deploy_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every binary's --help lists its variables, each with a default (or "-",
// or "(required)") and a description, once.
func TestHelpListsEveryVariable(t *testing.T) {
	// What each binary must read at the least: the deployment files and the
	// documentation rely on these.
	want := map[string][]string{
		"eventmesh":  {"NATS_EMBEDDED", "NATS_LISTEN", "NATS_SYNC", "DATA_DIR", "NATS_URL", "STREAM_REPLICAS", "INGEST_ADDR", "INGEST_API_KEY", "WEBHOOK_URL", "ARCHIVE_DSN", "AUTOACCEPT_ENABLED", "BRIDGE_URL"},
		"producer":   {"NATS_URL", "SUBJECT_PREFIX", "STREAM_REPLICAS", "STREAM_MAX_AGE", "INGEST_ADDR", "INGEST_API_KEY", "CONNECTOR_URL", "CONNECTOR_API_KEY"},
		"webhook":    {"NATS_URL", "SUBJECT_PREFIX", "HTTP_ADDR", "WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_MAX_DELIVER", "WEBHOOK_REPLICAS"},
		"autoaccept": {"NATS_URL", "SUBJECT_PREFIX", "HTTP_ADDR", "AUTOACCEPT_ENABLED", "CONNECTOR_URL", "CONNECTOR_API_KEY", "AUTOACCEPT_REPLICAS"},
		"archiver":   {"NATS_URL", "SUBJECT_PREFIX", "HTTP_ADDR", "DATA_DIR", "ARCHIVE_DSN", "ARCHIVE_ADDR", "ARCHIVE_API_KEY", "ARCHIVE_REPLICAS"},
		"bridge":     {"NATS_URL", "SUBJECT_PREFIX", "HTTP_ADDR", "BRIDGE_URL", "BRIDGE_FORMAT", "BRIDGE_TRIGGERS", "BRIDGE_AMQP_EXCHANGE", "BRIDGE_MQTT_TOPIC", "BRIDGE_REDIS_STREAM", "BRIDGE_TLS_CA", "BRIDGE_MAX_DELIVER", "BRIDGE_REPLICAS"},
	}
	name := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	for _, b := range binaries {
		t.Run(b, func(t *testing.T) {
			h := helpOf(t, b)
			seen := map[string]bool{}
			for _, v := range h.vars {
				if !name.MatchString(v.name) {
					t.Errorf("--help lists %q: not a variable name", v.name)
				}
				if seen[v.name] {
					t.Errorf("--help lists %s twice", v.name)
				}
				seen[v.name] = true
				if strings.TrimSpace(strings.TrimSuffix(v.desc, "[secret]")) == "" {
					t.Errorf("--help gives %s no description", v.name)
				}
			}
			for _, w := range want[b] {
				if !h.has(w) {
					t.Errorf("--help does not list %s", w)
				}
			}
		})
	}
}

// The configuration tables cannot drift from the binaries: every variable a
// binary lists is named in docs/configuration.md (in backticks), and every
// variable a table row of the README or of docs/ names is read by some
// binary.
func TestDocsDocumentEveryVariable(t *testing.T) {
	const configDoc = "docs/configuration.md"
	config := readFile(t, configDoc)
	known := map[string]bool{}
	for _, b := range binaries {
		for _, v := range helpOf(t, b).vars {
			known[v.name] = true
			if !strings.Contains(config, "`"+v.name+"`") {
				t.Errorf("%s --help lists %s, %s does not name `%s`", b, v.name, configDoc, v.name)
			}
		}
	}
	// A table row of variables: | `NAME` (secret), `OTHER` | default | meaning |
	row := regexp.MustCompile("^\\| *`[A-Z][A-Z0-9_]+`")
	varName := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md under %s: %v", root, err)
	}
	pages := []string{"README.md"}
	for _, d := range docs {
		pages = append(pages, filepath.Join("docs", filepath.Base(d)))
	}
	configRows := 0
	for _, page := range pages {
		for _, line := range strings.Split(readFile(t, page), "\n") {
			if !row.MatchString(line) {
				continue
			}
			if page == configDoc {
				configRows++
			}
			first := strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0]
			for _, m := range varName.FindAllStringSubmatch(first, -1) {
				if !known[m[1]] {
					t.Errorf("%s documents `%s`, which no binary reads (--help of none lists it):\n%s", page, m[1], line)
				}
			}
		}
	}
	if configRows < 10 {
		t.Errorf("%s has %d variable table rows; the configuration tables were not found", configDoc, configRows)
	}
}

// --version prints the binary's name and the version set at build time
// through the symbol the Dockerfile sets.
func TestVersion(t *testing.T) {
	for _, b := range binaries {
		t.Run(b, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, b, nil, "--version")
			if code != 0 {
				t.Fatalf("--version exited %d: %s", code, stderr)
			}
			if got, want := strings.TrimSpace(stdout), b+" "+testVersion; got != want {
				t.Errorf("--version printed %q, want %q", got, want)
			}
		})
	}
}

// A bad value stops the binary at start: exit status 2 and the variable
// named on stderr.
func TestBadValueExits2NamingTheVariable(t *testing.T) {
	cases := []struct {
		bin  string
		env  []string
		name string
	}{
		{"webhook", []string{"WEBHOOK_URL=https://receiver.example/hook", "WEBHOOK_MAX_DELIVER=lots"}, "WEBHOOK_MAX_DELIVER"},
		{"producer", []string{"STREAM_MAX_AGE=soon"}, "STREAM_MAX_AGE"},
		{"eventmesh", []string{"STREAM_MAX_AGE=soon"}, "STREAM_MAX_AGE"},
		{"autoaccept", []string{"AUTOACCEPT_ENABLED=true", "CONNECTOR_URL=http://127.0.0.1:1", "CONNECTOR_API_KEY=k", "AUTOACCEPT_CONCURRENCY=many"}, "AUTOACCEPT_CONCURRENCY"},
		{"archiver", []string{"ARCHIVE_BATCH_SIZE=big"}, "ARCHIVE_BATCH_SIZE"},
		{"archiver", []string{"ARCHIVE_MAX_AGE=forever"}, "ARCHIVE_MAX_AGE"},
		{"archiver", []string{"ARCHIVE_BATCH_BYTES=0"}, "ARCHIVE_BATCH_BYTES"},
		{"eventmesh", []string{"ARCHIVE_BATCH_BYTES=2GiB"}, "ARCHIVE_BATCH_BYTES"},
		// eventmesh reads the consumer runtime settings three times, with
		// three prefixes: the error names the one that is wrong.
		{"eventmesh", []string{"ARCHIVE_MAX_DELIVER=lots"}, "ARCHIVE_MAX_DELIVER"},
		{"eventmesh", []string{"AUTOACCEPT_ACK_WAIT=long"}, "AUTOACCEPT_ACK_WAIT"},
		{"webhook", []string{"WEBHOOK_URL=https://receiver.example/hook", "LOG_FORMAT=yaml"}, "LOG_FORMAT"},
		{"bridge", []string{"BRIDGE_URL=amqp://guest:guest@127.0.0.1:5672/", "BRIDGE_ORDER=fifo"}, "BRIDGE_ORDER"},
		{"bridge", []string{"BRIDGE_URL=nats://127.0.0.1:5672/"}, "BRIDGE_URL"},
		{"eventmesh", []string{"BRIDGE_URL=amqp://guest:guest@127.0.0.1:5672/", "BRIDGE_MAX_DELIVER=lots"}, "BRIDGE_MAX_DELIVER"},
		// Required settings missing name themselves too.
		{"bridge", nil, "BRIDGE_URL"},
		{"webhook", nil, "WEBHOOK_URL"},
		{"autoaccept", []string{"AUTOACCEPT_ENABLED=true"}, "CONNECTOR_URL"},
		{"autoaccept", nil, "AUTOACCEPT_ENABLED"},
	}
	for _, c := range cases {
		t.Run(c.bin+"/"+c.name, func(t *testing.T) {
			// NATS_URL points at a closed loopback port: a binary that got
			// past its configuration only retries, it reaches nothing.
			env := append([]string{"NATS_URL=nats://127.0.0.1:1"}, c.env...)
			_, stderr, code := runBinary(t, c.bin, env)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, c.name) {
				t.Errorf("stderr does not name %s:\n%s", c.name, stderr)
			}
		})
	}
}

// runBinary runs a built binary with exactly env as its environment and
// returns its output and exit status. A binary still running after 20s is
// killed and fails the test.
func runBinary(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binPath(bin), args...)
	cmd.Env = append([]string{}, env...)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %v did not exit within 20s; stderr:\n%s", bin, args, errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}
