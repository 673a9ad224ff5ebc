package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

// requiredEnv are the variables docker-compose.yml requires (${NAME:?…}).
var requiredEnv = map[string]string{
	"INGEST_API_KEY":  "ingest-key-for-tests",
	"WEBHOOK_URL":     "https://receiver.example/enmeshed/{{trigger}}",
	"ARCHIVE_API_KEY": "archive-key-for-tests",
}

// connectorEnv are the variables the autoaccept profile needs.
var connectorEnv = map[string]string{
	"CONNECTOR_URL":     "http://connector:80",
	"CONNECTOR_API_KEY": "connector-key-for-tests",
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// loadCompose loads docker-compose.yml as docker compose does, with env as
// the only environment (the test's own is not consulted) and profiles
// enabled ("*": all).
func loadCompose(t *testing.T, env map[string]string, profiles []string, opts ...cli.ProjectOptionsFn) (*types.Project, error) {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts = append([]cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(root),
		cli.WithName("eventmesh"),
		cli.WithEnv(list),
		cli.WithProfiles(profiles),
	}, opts...)
	o, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return o.LoadProject(context.Background())
}

func mustLoad(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env, profiles)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load (profiles %q): %v", profiles, err)
	}
	return p
}

// binaryOf returns the binary of ours a service runs ("" for other images).
func binaryOf(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	if len(s.Entrypoint) == 0 {
		if s.Build != nil {
			return "eventmesh" // the image's ENTRYPOINT
		}
		return ""
	}
	b := strings.TrimPrefix(s.Entrypoint[0], "/")
	if !slices.Contains(binaries, b) {
		if s.Build != nil {
			t.Errorf("service %s: entrypoint %q runs none of %v", s.Name, s.Entrypoint, binaries)
		}
		return ""
	}
	if len(s.Entrypoint) != 1 || s.Entrypoint[0] != "/"+b {
		t.Errorf("service %s: entrypoint %q, want [/%s] (the Dockerfile copies the binaries to /)", s.Name, s.Entrypoint, b)
	}
	return b
}

func env(s types.ServiceConfig, name string) (string, bool) {
	v, ok := s.Environment[name]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func sortedServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range p.Services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// The required variables are required: compose refuses to start without
// them, naming them. Auto-accept and the cluster are off by default.
func TestComposeLoads(t *testing.T) {
	p := mustLoad(t, requiredEnv)
	want := []string{"archiver", "nats", "postgres", "producer", "webhook"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Errorf("services without profiles: %v, want %v", sorted(got), want)
	}
	disabled := p.DisabledServiceNames()
	for _, s := range []string{"autoaccept", "nats-1", "nats-2", "nats-3", "producer-cluster", "rabbitmq", "bridge"} {
		if !slices.Contains(disabled, s) {
			t.Errorf("service %s runs without its profile (disabled: %v)", s, disabled)
		}
	}
	for name := range requiredEnv {
		t.Run("without "+name, func(t *testing.T) {
			env := merge(requiredEnv)
			delete(env, name)
			_, err := loadCompose(t, env, nil)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("loaded without %s: err %v", name, err)
			}
		})
	}
	all := mustLoad(t, merge(requiredEnv, connectorEnv), "*")
	if len(all.DisabledServices) != 0 {
		t.Errorf("with every profile, still disabled: %v", all.DisabledServiceNames())
	}
	deployed := map[string]bool{}
	for _, s := range all.Services {
		deployed[binaryOf(t, s)] = true
	}
	for _, b := range []string{"producer", "webhook", "autoaccept", "archiver", "bridge"} {
		if !deployed[b] {
			t.Errorf("no service runs %s", b)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// Every variable a service sets is one its binary reads (a misspelt name
// would be ignored silently), every variable --help marks required is set,
// listeners bind beyond the container's loopback, published ports reach a
// listener, and no secret is written into the file.
func TestComposeEnvironmentMatchesBinaries(t *testing.T) {
	p := mustLoad(t, merge(requiredEnv, connectorEnv), "*")
	raw, err := loadCompose(t, nil, []string{"*"}, cli.WithInterpolation(false))
	if err != nil {
		t.Fatalf("docker-compose.yml without interpolation: %v", err)
	}
	for _, s := range sortedServices(p) {
		bin := binaryOf(t, s)
		if bin == "" {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			if s.Build == nil || filepath.Clean(s.Build.Context) != filepath.Clean(root) || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("not built from the module's Dockerfile: build %+v", s.Build)
			}
			h := helpOf(t, bin)
			vars := map[string]helpVar{}
			for _, v := range h.vars {
				vars[v.name] = v
			}
			for name := range s.Environment {
				if _, ok := vars[name]; !ok {
					t.Errorf("sets %s, which %s does not read (not in its --help)", name, bin)
				}
			}
			for _, v := range h.vars {
				if v.def != "(required)" {
					continue
				}
				if val, _ := env(s, v.name); val == "" {
					t.Errorf("%s requires %s; the service does not set it", bin, v.name)
				}
			}
			listeners := map[uint32]string{}
			for _, name := range []string{"INGEST_ADDR", "HTTP_ADDR", "ARCHIVE_ADDR", "NATS_LISTEN"} {
				addr, ok := env(s, name)
				if !ok || addr == "" {
					continue
				}
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					t.Errorf("%s=%q: %v", name, addr, err)
					continue
				}
				if router.LoopbackHost(host) {
					t.Errorf("%s=%s listens on the container's loopback: unreachable from outside it", name, addr)
				}
				n, _ := strconv.Atoi(port)
				listeners[uint32(n)] = name
			}
			for _, port := range s.Ports {
				if _, ok := listeners[port.Target]; !ok {
					t.Errorf("publishes container port %d, where nothing listens (listeners: %v)", port.Target, listeners)
				}
			}
			rs := raw.Services[s.Name]
			for _, v := range h.vars {
				if !strings.HasSuffix(v.desc, "[secret]") {
					continue
				}
				val, ok := env(rs, v.name)
				if ok && val != "" && !strings.Contains(val, "${") {
					t.Errorf("secret %s is written into docker-compose.yml: take it from a variable", v.name)
				}
			}
		})
	}
}

// Each service's environment passes its binary's own validation: the binary
// gets past its configuration and goes on to connect to NATS (pointed here at
// a closed loopback port, so nothing is reached).
func TestComposeEnvironmentAccepted(t *testing.T) {
	p := mustLoad(t, merge(requiredEnv, connectorEnv), "*")
	for _, s := range sortedServices(p) {
		bin := binaryOf(t, s)
		if bin == "" {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			checkAccepted(t, bin, containerEnv(t, s))
		})
	}
	// Without the Connector settings compose still loads (its ${…:?}
	// checks run for every service, enabled or not, so the profile cannot
	// use them); the binary refuses to start, naming what is missing.
	t.Run("autoaccept without CONNECTOR_URL", func(t *testing.T) {
		p := mustLoad(t, requiredEnv, "autoaccept")
		s, ok := p.Services["autoaccept"]
		if !ok {
			t.Fatal("no autoaccept service in the autoaccept profile")
		}
		_, stderr, code := runBinary(t, "autoaccept", containerEnv(t, s))
		if code != 2 || !strings.Contains(stderr, "CONNECTOR_URL") {
			t.Errorf("exit status %d, want 2 naming CONNECTOR_URL; stderr:\n%s", code, stderr)
		}
	})
}

// containerEnv is the service's environment as its container gets it (the
// image's ENV DATA_DIR=/data included), NATS_URL pointing at a closed
// loopback port.
func containerEnv(t *testing.T, s types.ServiceConfig) []string {
	t.Helper()
	out := []string{"DATA_DIR=" + t.TempDir()}
	for k, v := range s.Environment {
		if v == nil {
			continue
		}
		if k == "NATS_URL" {
			urls := strings.Split(*v, ",")
			for i := range urls {
				urls[i] = "nats://127.0.0.1:1"
			}
			out = append(out, k+"="+strings.Join(urls, ","))
			continue
		}
		out = append(out, k+"="+*v)
	}
	return out
}

// checkAccepted runs bin with env until it is past its configuration (it
// logs that NATS is not reachable, or is still running after 5s), then stops
// it with SIGTERM.
func checkAccepted(t *testing.T, bin string, env []string) {
	t.Helper()
	var stderr natstest.LogBuffer
	cmd := exec.Command(binPath(bin))
	cmd.Env = env
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(5 * time.Second)
wait:
	for !strings.Contains(stderr.String(), "NATS not reachable") {
		select {
		case err := <-done:
			t.Fatalf("%s exited (%v) instead of connecting to NATS: its configuration was refused?\n%s", bin, err, stderr.String())
		case <-deadline:
			break wait
		case <-time.After(20 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 15s of SIGTERM", bin)
	}
	if out := stderr.String(); strings.Contains(out, "configuration") {
		t.Errorf("%s complained about its configuration:\n%s", bin, out)
	}
}

var imageTag = regexp.MustCompile(`^([a-z0-9./_-]+):(\d+)\.(\d+)(?:\.(\d+))?(-[a-z0-9.]+)?$`)

// version returns the pinned version of an image: "nats:2.11.9-alpine"
// gives nats, [2 11 9]; "postgres:16.11-alpine" (PostgreSQL has no third
// number) postgres, [16 11 0].
func version(t *testing.T, image string) (string, [3]int) {
	t.Helper()
	m := imageTag.FindStringSubmatch(image)
	if m == nil {
		t.Fatalf("image %q is not pinned to a release (name:MAJOR.MINOR[.PATCH][-variant])", image)
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[2+i])
	}
	return m[1], v
}

// natsServices returns the services running the NATS server, by name.
func natsServices(t *testing.T, p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range sortedServices(p) {
		if s.Image == "nats" || strings.HasPrefix(s.Image, "nats:") {
			out = append(out, s)
		}
	}
	return out
}

// natsOptions parses the server configuration a NATS service is given with
// the server's own parser.
func natsOptions(t *testing.T, p *types.Project, s types.ServiceConfig) (*server.Options, string) {
	t.Helper()
	if len(s.Configs) != 1 {
		t.Fatalf("service %s: %d configs, want its one inline server configuration", s.Name, len(s.Configs))
	}
	ref := s.Configs[0]
	c, ok := p.Configs[ref.Source]
	if !ok || c.Content == "" {
		t.Fatalf("service %s: config %q is not a top-level config with content", s.Name, ref.Source)
	}
	if cmd := strings.Join(s.Command, " "); !strings.Contains(cmd, ref.Target) {
		t.Errorf("service %s: command %q does not load %s", s.Name, cmd, ref.Target)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(c.Content), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("service %s: nats-server rejects its configuration: %v\n%s", s.Name, err, c.Content)
	}
	return opts, c.Content
}

// Every NATS server runs a recent release with JetStream on a named volume,
// fsyncing every write, and is health-checked on its monitoring port.
func TestComposeNATS(t *testing.T) {
	p := mustLoad(t, merge(requiredEnv, connectorEnv), "*")
	nodes := natsServices(t, p)
	if len(nodes) < 4 {
		t.Fatalf("%d NATS services, want nats and the cluster's three", len(nodes))
	}
	for _, s := range nodes {
		t.Run(s.Name, func(t *testing.T) {
			if s.Image != nodes[0].Image {
				t.Errorf("image %s, while %s runs %s: one version everywhere", s.Image, nodes[0].Name, nodes[0].Image)
			}
			_, v := version(t, s.Image)
			if !regexp.MustCompile(`^nats:\d+\.\d+\.\d+-`).MatchString(s.Image) {
				t.Errorf("image %s is not pinned to a nats-server release (nats:2.x.y-alpine)", s.Image)
			}
			if v[0] < 2 || v[0] == 2 && v[1] < 11 {
				t.Errorf("image %s: want nats-server 2.11 or later", s.Image)
			}
			opts, content := natsOptions(t, p, s)
			if !regexp.MustCompile(`(?m)^\s*sync_interval: always\s*$`).MatchString(content) {
				t.Errorf("configuration lacks sync_interval: always:\n%s", content)
			}
			if !opts.JetStream || !opts.SyncAlways {
				t.Errorf("JetStream %v, sync always %v: want both", opts.JetStream, opts.SyncAlways)
			}
			if opts.JetStreamMaxStore <= 0 {
				t.Errorf("no max_file_store: the server would claim most of the disk")
			}
			if opts.MaxPayload <= 0 {
				t.Errorf("no max_payload")
			}
			if opts.ServerName == "" {
				t.Errorf("no server_name")
			}
			if opts.Port != 4222 {
				t.Errorf("client port %d, want 4222", opts.Port)
			}
			vol := -1
			for i, m := range s.Volumes {
				if m.Target == opts.StoreDir {
					vol = i
				}
			}
			if vol < 0 {
				t.Errorf("store_dir %q is not a mounted volume: the stream would die with the container", opts.StoreDir)
			} else if m := s.Volumes[vol]; m.Type != types.VolumeTypeVolume || p.Volumes[m.Source].Name == "" {
				t.Errorf("store_dir %q is on %s %q, want a named volume", opts.StoreDir, m.Type, m.Source)
			}
			if s.HealthCheck == nil || s.HealthCheck.Disable {
				t.Fatal("no healthcheck")
			}
			test := strings.Join(s.HealthCheck.Test, " ")
			if want := fmt.Sprintf(":%d/healthz?js-enabled-only=true", opts.HTTPPort); opts.HTTPPort == 0 || !strings.Contains(test, want) {
				t.Errorf("healthcheck %q, want a probe of %s (the monitoring port)", test, want)
			}
		})
	}
}

// The cluster profile runs three JetStream nodes, each routing to all three,
// and the producer creates ENMESHED with three replicas there.
func TestComposeCluster(t *testing.T) {
	p := mustLoad(t, merge(requiredEnv, connectorEnv), "cluster")
	var nodes []types.ServiceConfig
	for _, s := range natsServices(t, p) {
		if slices.Contains(s.Profiles, "cluster") {
			nodes = append(nodes, s)
		}
	}
	if len(nodes) != 3 {
		t.Fatalf("%d NATS nodes in the cluster profile, want 3", len(nodes))
	}
	names := map[string]bool{}
	for _, n := range nodes {
		names[n.Name] = true
	}
	clusterName, servers, volumes := "", map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		opts, _ := natsOptions(t, p, n)
		if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
			t.Errorf("%s: no cluster block (name %q, port %d)", n.Name, opts.Cluster.Name, opts.Cluster.Port)
			continue
		}
		if clusterName != "" && opts.Cluster.Name != clusterName {
			t.Errorf("%s: cluster %q, others %q", n.Name, opts.Cluster.Name, clusterName)
		}
		clusterName = opts.Cluster.Name
		if servers[opts.ServerName] {
			t.Errorf("%s: server_name %q taken by another node", n.Name, opts.ServerName)
		}
		servers[opts.ServerName] = true
		routed := map[string]bool{}
		for _, r := range opts.Routes {
			if !names[r.Hostname()] || r.Port() != strconv.Itoa(opts.Cluster.Port) {
				t.Errorf("%s: route %s is not a cluster node's cluster port", n.Name, r)
			}
			routed[r.Hostname()] = true
		}
		for name := range names {
			if !routed[name] {
				t.Errorf("%s: no route to %s", n.Name, name)
			}
		}
		for _, m := range n.Volumes {
			if m.Target == opts.StoreDir {
				if volumes[m.Source] {
					t.Errorf("%s: store volume %s shared with another node", n.Name, m.Source)
				}
				volumes[m.Source] = true
			}
		}
	}
	var producers int
	for _, s := range sortedServices(p) {
		bin := binaryOf(t, s)
		if bin == "" || !slices.Contains(s.Profiles, "cluster") {
			continue
		}
		hosts := natsHosts(t, s)
		for name := range names {
			if !slices.Contains(hosts, name) {
				t.Errorf("%s: NATS_URL does not list %s (it lists %v)", s.Name, name, hosts)
			}
		}
		replicas := map[string]string{"producer": "STREAM_REPLICAS", "webhook": "WEBHOOK_REPLICAS", "archiver": "ARCHIVE_REPLICAS", "autoaccept": "AUTOACCEPT_REPLICAS"}[bin]
		if v, _ := env(s, replicas); v != "3" {
			t.Errorf("%s: %s=%q, want 3 in a 3-node cluster", s.Name, replicas, v)
		}
		if bin == "producer" {
			producers++
		}
	}
	if producers == 0 {
		t.Error("no producer in the cluster profile")
	}
}

// natsHosts returns the hosts of a service's NATS_URL.
func natsHosts(t *testing.T, s types.ServiceConfig) []string {
	t.Helper()
	v, ok := env(s, "NATS_URL")
	if !ok || v == "" {
		t.Errorf("%s: no NATS_URL (it would connect to its own loopback)", s.Name)
		return nil
	}
	var hosts []string
	for _, raw := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Scheme != "nats" || u.Port() != "4222" {
			t.Errorf("%s: NATS_URL entry %q, want nats://<service>:4222", s.Name, raw)
			continue
		}
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

// Services start when what they need is healthy: the NATS servers in their
// NATS_URL and the archive database.
func TestComposeDependencies(t *testing.T) {
	p := mustLoad(t, merge(requiredEnv, connectorEnv), "*")
	for _, s := range sortedServices(p) {
		t.Run(s.Name, func(t *testing.T) {
			for dep, d := range s.DependsOn {
				target, ok := p.Services[dep]
				if !ok {
					t.Errorf("depends on %s, which is not a service", dep)
					continue
				}
				if d.Condition == types.ServiceConditionHealthy && (target.HealthCheck == nil || target.HealthCheck.Disable) {
					t.Errorf("waits for %s to be healthy, which has no healthcheck", dep)
				}
			}
			if binaryOf(t, s) == "" {
				return
			}
			needs := natsHosts(t, s)
			if dsn, _ := env(s, "ARCHIVE_DSN"); dsn != "" {
				u, err := url.Parse(dsn)
				if err != nil || u.Scheme != "postgres" {
					t.Errorf("ARCHIVE_DSN is not a postgres:// URL")
				} else {
					needs = append(needs, u.Hostname())
				}
			}
			if broker, _ := env(s, "BRIDGE_URL"); broker != "" {
				u, err := url.Parse(broker)
				if err != nil {
					t.Errorf("BRIDGE_URL does not parse")
				} else {
					needs = append(needs, u.Hostname())
				}
			}
			for _, host := range needs {
				target, ok := p.Services[host]
				if !ok {
					t.Errorf("connects to %s, which is not a service", host)
					continue
				}
				if target.HealthCheck == nil {
					t.Errorf("connects to %s, which has no healthcheck", host)
				}
				if d, ok := s.DependsOn[host]; !ok || d.Condition != types.ServiceConditionHealthy {
					t.Errorf("does not wait for %s to be healthy (depends_on %s: condition: service_healthy)", host, host)
				}
			}
		})
	}
}

// PostgreSQL: a pinned 16.x, its password from POSTGRES_PASSWORD (default
// eventmesh) in both places that use it, health-checked with pg_isready.
func TestComposePostgres(t *testing.T) {
	for _, password := range []string{"", "s3cret-for-tests"} {
		e := merge(requiredEnv)
		want := "eventmesh"
		if password != "" {
			e["POSTGRES_PASSWORD"] = password
			want = password
		}
		p := mustLoad(t, e)
		pg, ok := p.Services["postgres"]
		if !ok {
			t.Fatal("no postgres service")
		}
		if name, v := version(t, pg.Image); name != "postgres" || v[0] != 16 || !strings.HasSuffix(pg.Image, "-alpine") {
			t.Errorf("image %s, want postgres:16.x-alpine", pg.Image)
		}
		if got, _ := env(pg, "POSTGRES_PASSWORD"); got != want {
			t.Errorf("POSTGRES_PASSWORD=%q, want %q", got, want)
		}
		dsn, _ := env(p.Services["archiver"], "ARCHIVE_DSN")
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("ARCHIVE_DSN: %v", err)
		}
		if pw, _ := u.User.Password(); pw != want || u.Host != "postgres:5432" {
			t.Errorf("ARCHIVE_DSN has password %q and host %q, want %q at postgres:5432", pw, u.Host, want)
		}
		if pg.HealthCheck == nil || !strings.Contains(strings.Join(pg.HealthCheck.Test, " "), "pg_isready") {
			t.Errorf("postgres healthcheck %+v, want pg_isready", pg.HealthCheck)
		}
		if len(pg.Volumes) == 0 || pg.Volumes[0].Type != types.VolumeTypeVolume {
			t.Errorf("postgres data is not on a named volume: %+v", pg.Volumes)
		}
	}
}

// rootImages may run as root, and why.
var rootImages = map[string]string{
	"nats": "the official image has no other user, and its store is a named volume owned by root",
}

// Every service restarts on its own, and none runs as root where the image
// allows another user.
func TestComposeRestartAndUser(t *testing.T) {
	p := mustLoad(t, merge(requiredEnv, connectorEnv), "*")
	imageUser := dockerfileUser(t)
	for _, s := range sortedServices(p) {
		if s.Restart == "" || s.Restart == types.RestartPolicyNo {
			t.Errorf("%s: restart policy %q", s.Name, s.Restart)
		}
		user := s.User
		if binaryOf(t, s) != "" && user == "" {
			user = imageUser
		}
		if isRoot(user) {
			name, _, _ := strings.Cut(s.Image, ":")
			if rootImages[name] == "" {
				t.Errorf("%s runs as root (user %q)", s.Name, user)
			}
		}
	}
}

func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "root" || u == "0"
}
