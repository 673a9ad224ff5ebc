package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// binaries are the module's commands, each built into the image at /<name>.
var binaries = []string{"eventmesh", "producer", "webhook", "autoaccept", "archiver", "bridge"}

const (
	// versionSymbol is what the Dockerfile sets with -ldflags -X.
	versionSymbol = "github.com/eventmesh/eventmesh/cmd/internal/app.Version"
	testVersion   = "v0.0.0-deploytest"
)

var (
	root   string              // the module root
	binDir string              // where TestMain built the binaries
	helps  = map[string]help{} // each binary's --help, parsed
)

// help is a binary's --help output and the variables it lists.
type help struct {
	out  string
	vars []helpVar
	err  error
}

type helpVar struct {
	name, def, desc string
}

func (h help) has(name string) bool {
	for _, v := range h.vars {
		if v.name == name {
			return true
		}
	}
	return false
}

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// setup builds every binary once, as the Dockerfile does (CGO_ENABLED=0, the
// version set through versionSymbol), and reads its --help.
func setup() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("not inside the module")
	}
	root = filepath.Dir(gomod)
	if binDir, err = os.MkdirTemp("", "eventmesh-deploy-test-"); err != nil {
		return err
	}
	args := []string{"build", "-ldflags", "-X " + versionSymbol + "=" + testVersion, "-o", binDir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(binDir)
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, b := range binaries {
		helps[b] = readHelp(b)
	}
	return nil
}

var helpLine = regexp.MustCompile(`^  (\S+)\s+(\S+)\s*(.*)$`)

func readHelp(bin string) help {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binPath(bin), "--help")
	cmd.Env = []string{}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return help{err: fmt.Errorf("%s --help: %v\n%s", bin, err, stderr.String())}
	}
	h := help{out: stdout.String()}
	table := false
	for _, line := range strings.Split(h.out, "\n") {
		if strings.HasPrefix(line, "  VARIABLE") {
			table = true
			continue
		}
		if !table || strings.TrimSpace(line) == "" {
			continue
		}
		m := helpLine.FindStringSubmatch(line)
		if m == nil {
			h.err = fmt.Errorf("%s --help: cannot read the line %q", bin, line)
			return h
		}
		h.vars = append(h.vars, helpVar{name: m[1], def: m[2], desc: m[3]})
	}
	if len(h.vars) == 0 {
		h.err = fmt.Errorf("%s --help lists no variables:\n%s", bin, h.out)
	}
	return h
}

// binPath is the path of a built binary.
func binPath(name string) string { return filepath.Join(binDir, name) }

// helpOf returns the parsed --help of bin, failing the test when it could
// not be read.
func helpOf(t *testing.T, bin string) help {
	t.Helper()
	h, ok := helps[bin]
	if !ok {
		t.Fatalf("no binary %q", bin)
	}
	if h.err != nil {
		t.Fatal(h.err)
	}
	return h
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
