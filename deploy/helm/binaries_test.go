package helm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// commands are the main module's binaries the chart runs, each at /<name> in
// the image.
var commands = []string{"producer", "webhook", "bridge", "archiver", "autoaccept", "console"}

// help is what a binary's --help lists: every variable it reads.
type help struct {
	vars map[string]helpVar
	err  error // the binary could not be built or its --help not read
}

type helpVar struct {
	def, desc string
}

// accepts reports whether the binary reads the variable: listed by --help,
// or <NAME>_FILE for a variable --help marks [secret].
func (h help) accepts(name string) bool {
	if _, ok := h.vars[name]; ok {
		return true
	}
	base, ok := strings.CutSuffix(name, "_FILE")
	return ok && strings.HasSuffix(h.vars[base].desc, "[secret]")
}

// healthVars are the variables whose address serves /healthz and /readyz,
// as the binary's --help describes them.
func (h help) healthVars() []string {
	var names []string
	for name, v := range h.vars {
		if strings.Contains(v.desc, "/healthz") {
			names = append(names, name)
		}
	}
	return names
}

// buildBinaries builds every command the main module (../..) holds into dir
// and reads each one's --help; a command missing from the tree gets an error.
func buildBinaries(dir string) (map[string]help, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	helps := map[string]help{}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	var built []string
	for _, c := range commands {
		if _, err := os.Stat(filepath.Join(root, "cmd", c, "main.go")); err != nil {
			helps[c] = help{err: fmt.Errorf("cmd/%s is not in the main module: its variables cannot be checked", c)}
			continue
		}
		args = append(args, "./cmd/"+c)
		built = append(built, c)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
	}
	for _, c := range built {
		helps[c] = readHelp(filepath.Join(dir, c))
	}
	return helps, nil
}

var helpLine = regexp.MustCompile(`^  (\S+)\s+(\S+)\s*(.*)$`)

// readHelp runs bin --help with an empty environment and parses its table of
// variables (VARIABLE DEFAULT DESCRIPTION).
func readHelp(bin string) help {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Env = []string{}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return help{err: fmt.Errorf("%s --help: %v\n%s", bin, err, stderr.String())}
	}
	h := help{vars: map[string]helpVar{}}
	table := false
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "  VARIABLE") {
			table = true
			continue
		}
		if !table || strings.TrimSpace(line) == "" {
			continue
		}
		m := helpLine.FindStringSubmatch(line)
		if m == nil {
			return help{err: fmt.Errorf("%s --help: cannot read the line %q", bin, line)}
		}
		h.vars[m[1]] = helpVar{def: m[2], desc: m[3]}
	}
	if len(h.vars) == 0 {
		h.err = fmt.Errorf("%s --help lists no variables:\n%s", bin, stdout.String())
	}
	return h
}
