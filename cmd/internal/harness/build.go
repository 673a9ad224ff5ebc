// Package harness runs the mesh as its users do — the real binaries as
// separate processes against a NATS server — and measures what happens to
// every event: a load generator posting Connector-shaped events to ingest,
// HTTP receivers that verify signatures, count deliveries and inject
// faults, process control (SIGKILL, SIGTERM, restart), and an account of
// every event from ingest to receiver, dead-letter queue and archive.
//
// It is shared by the chaos suite (cmd/internal/chaos) and the benchmark.
// It starts no NATS server itself (that is the caller's: natstest in
// tests), so it links no nats-server, and it reads no environment.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Build compiles each of binaries (names of directories under cmd/ of the
// module: "producer", "webhook", …) into dir with one go build, and
// returns the path of each executable by name. The module is found from
// this package's source directory, else from the working directory.
func Build(dir string, binaries ...string) (map[string]string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	return BuildFrom(root, dir, binaries...)
}

// BuildFrom is Build from the module's source checkout at root.
func BuildFrom(root, dir string, binaries ...string) (map[string]string, error) {
	if len(binaries) == 0 {
		return nil, errors.New("harness: build: no binaries named")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("harness: build: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("harness: build: %w", err)
	}
	args := []string{"build", "-o", abs + string(filepath.Separator)}
	paths := make(map[string]string, len(binaries))
	for _, b := range binaries {
		if b == "" || strings.ContainsAny(b, `/\.`) {
			return nil, fmt.Errorf("harness: build: %q is not a directory name under cmd/", b)
		}
		if _, ok := paths[b]; ok {
			continue
		}
		args = append(args, "./cmd/"+b)
		paths[b] = filepath.Join(abs, b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("harness: go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	for name, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("harness: build %s: %w", name, err)
		}
	}
	return paths, nil
}

// module is the path of the module whose binaries Build builds.
const module = "github.com/eventmesh/eventmesh"

// ModuleRoot returns the root of the module's source checkout: the one
// holding this package's source directory (known when the harness runs
// from a test of the module), else the working directory.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		if st, err := os.Stat(filepath.Dir(file)); err == nil && st.IsDir() {
			return ModuleRootOf(filepath.Dir(file))
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	return ModuleRootOf(wd)
}

// ModuleRootOf returns the directory of the go.mod at or above dir, as the
// go command finds it, which must be the eventmesh module's.
func ModuleRootOf(dir string) (string, error) {
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for line := range strings.Lines(string(mod)) {
				if path, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok && strings.Trim(strings.TrimSpace(path), `"`) == module {
					return dir, nil
				}
			}
			return "", fmt.Errorf("harness: %s is not the go.mod of %s: run from the eventmesh module", filepath.Join(dir, "go.mod"), module)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("harness: not inside a source checkout of %s (no go.mod at or above the directory): run from the eventmesh module", module)
		}
		dir = parent
	}
}
