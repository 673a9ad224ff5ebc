package deploy_test

import (
	"encoding/json"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
}

// dockerfile returns the Dockerfile's instructions and its global ARG
// defaults.
func dockerfile(t *testing.T) []instruction {
	t.Helper()
	var (
		out  []instruction
		cur  string
		cont bool
	)
	for _, line := range strings.Split(readFile(t, "Dockerfile"), "\n") {
		trimmed := strings.TrimSpace(line)
		if !cont && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cont && strings.HasPrefix(trimmed, "#") {
			continue
		}
		cur += " " + strings.TrimSuffix(trimmed, "\\")
		if cont = strings.HasSuffix(trimmed, "\\"); cont {
			continue
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// stages splits the instructions by FROM, expanding global ARGs in FROM.
func stages(t *testing.T) [][]instruction {
	t.Helper()
	args := map[string]string{}
	var out [][]instruction
	for _, in := range dockerfile(t) {
		if in.cmd == "ARG" && len(out) == 0 {
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
			continue
		}
		if in.cmd == "FROM" {
			in.args = regexp.MustCompile(`\$\{?(\w+)\}?`).ReplaceAllStringFunc(in.args, func(s string) string {
				name := strings.Trim(s, "${}")
				if v, ok := args[name]; ok {
					return v
				}
				return s
			})
			out = append(out, nil)
		}
		if len(out) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
		}
		out[len(out)-1] = append(out[len(out)-1], in)
	}
	if len(out) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(out))
	}
	return out
}

// fromImage returns the image of a FROM instruction (flags and AS dropped).
func fromImage(from string) string {
	for _, f := range strings.Fields(from) {
		if !strings.HasPrefix(f, "--") {
			return f
		}
	}
	return ""
}

// dockerfileUser returns the user the final image runs as.
func dockerfileUser(t *testing.T) string {
	t.Helper()
	st := stages(t)
	final := st[len(st)-1]
	user := ""
	if strings.HasSuffix(fromImage(final[0].args), ":nonroot") {
		user = "65532:65532" // distroless's nonroot user
	}
	for _, in := range final {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	return user
}

// The image is built as the docs and docker-compose.yml expect: every
// binary, static, with its version, on a non-root distroless base.
func TestDockerfile(t *testing.T) {
	st := stages(t)
	build, final := st[0], st[len(st)-1]

	goMod := readFile(t, "go.mod")
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	image := fromImage(build[0].args)
	tag := regexp.MustCompile(`^golang:(\d+)\.(\d+)(\.\d+)?-[a-z]+$`).FindStringSubmatch(image)
	if tag == nil {
		t.Fatalf("build stage FROM %q, want golang:MAJOR.MINOR-<distribution>", image)
	}
	if atoi(tag[1])*1000+atoi(tag[2]) < atoi(m[1])*1000+atoi(m[2]) {
		t.Errorf("build stage %s is older than go.mod's go %s.%s", image, m[1], m[2])
	}

	var run string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			run = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X " + versionSymbol + "=${VERSION}"} {
		if !strings.Contains(run, want) {
			t.Errorf("go build does not use %q:\n%s", want, run)
		}
	}
	for _, b := range binaries {
		if !regexp.MustCompile(`\./cmd/` + b + `(\s|$)`).MatchString(run) {
			t.Errorf("go build does not build ./cmd/%s", b)
		}
	}

	from := fromImage(final[0].args)
	if from != "gcr.io/distroless/static-debian12:nonroot" && from != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static (nonroot) or scratch", from)
	}
	if user := dockerfileUser(t); isRoot(user) {
		t.Errorf("the image runs as root (USER %q)", user)
	}
	got := map[string][]string{}
	for _, in := range final {
		got[in.cmd] = append(got[in.cmd], in.args)
	}
	copiesBinaries := false
	for _, c := range got["COPY"] {
		f := strings.Fields(c)
		if len(f) >= 2 && slices.Contains(f, "--from=build") && path.Clean(f[len(f)-1]) == "/" {
			copiesBinaries = true
		}
	}
	if !copiesBinaries {
		t.Errorf("the final stage does not copy the binaries to / (COPY %q)", got["COPY"])
	}
	want := map[string]string{
		"WORKDIR":    "/data",
		"ENV":        "DATA_DIR=/data",
		"ENTRYPOINT": `["/eventmesh"]`,
	}
	for cmd, w := range want {
		if !slices.Contains(got[cmd], w) {
			t.Errorf("final stage: %s %q, want %s %s", cmd, got[cmd], cmd, w)
		}
	}
	var entry []string
	if e := got["ENTRYPOINT"]; len(e) == 0 || json.Unmarshal([]byte(e[len(e)-1]), &entry) != nil {
		t.Errorf("ENTRYPOINT %q is not the exec form", got["ENTRYPOINT"])
	}
	exposed := strings.Fields(strings.Join(got["EXPOSE"], " "))
	for _, p := range []string{"4222", "8080", "8081", "9090"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}
	if !strings.Contains(readFile(t, "Dockerfile"), "--entrypoint /webhook") {
		t.Error("the Dockerfile does not say how to run the other binaries (--entrypoint /webhook)")
	}
}

// The Dockerfile's examples that open a listener beyond the container's
// loopback give it its key or credentials, as eventmesh requires: an example
// copied as it stands must start, and must not start an open server.
func TestDockerfileExamplesAuthenticate(t *testing.T) {
	var cmds []string
	cur := ""
	for _, line := range strings.Split(readFile(t, "Dockerfile"), "\n") {
		text, ok := strings.CutPrefix(strings.TrimSpace(line), "#")
		if !ok {
			continue
		}
		text = strings.TrimSpace(text)
		cur += " " + strings.TrimSuffix(text, "\\")
		if !strings.HasSuffix(text, "\\") {
			cmds = append(cmds, strings.TrimSpace(cur))
			cur = ""
		}
	}
	needs := map[string][]string{
		"NATS_LISTEN=0.0.0.0":  {"NATS_PASSWORD", "NATS_TOKEN", "NATS_SERVER_CONFIG"},
		"INGEST_ADDR=0.0.0.0":  {"INGEST_API_KEY"},
		"ARCHIVE_ADDR=0.0.0.0": {"ARCHIVE_API_KEY"},
		"CONSOLE_ADDR=0.0.0.0": {"CONSOLE_PASSWORD"},
	}
	checked := 0
	for _, c := range cmds {
		if !strings.HasPrefix(c, "docker run") {
			continue
		}
		for listen, auth := range needs {
			if !strings.Contains(c, listen) {
				continue
			}
			checked++
			if !slices.ContainsFunc(auth, func(a string) bool { return strings.Contains(c, "-e "+a) }) {
				t.Errorf("the example %q sets %s without %s", c, listen, strings.Join(auth, " or "))
			}
		}
	}
	if checked == 0 {
		t.Error("no example in the Dockerfile opens a listener: did the examples move?")
	}
}

// .dockerignore keeps the store, git and test binaries out of the build
// context, and nothing the build needs.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(readFile(t, ".dockerignore"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimPrefix(line, "/"))
		}
	}
	for _, want := range []string{".git", "data/", "*.test"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	needed := []string{"go.mod", "go.sum", "cmd/eventmesh/main.go", "cmd/internal/app/config.go", "streams/stream.go", "producer/ingest.go"}
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			continue
		}
		for _, n := range needed {
			if ignored(p, n) {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, n)
			}
		}
	}
}

// ignored reports whether pattern excludes name or a directory above it
// (the patterns' ** matched as any number of directories).
func ignored(pattern, name string) bool {
	pattern = strings.TrimSuffix(pattern, "/")
	parts := strings.Split(name, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if ok, _ := path.Match(pattern, prefix); ok {
			return true
		}
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if ok, _ := path.Match(rest, strings.Join(parts[j:i], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
