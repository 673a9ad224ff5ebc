package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventmesh-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "eventmesh")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build eventmesh: %v\n%s", err, out)
		os.Exit(1)
	}
	// A test that leaves a listener or a server at its default fails.
	release := harness.HoldDefaultAddrs()
	code := m.Run()
	release()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	vars := app.Vars(&config{})
	if len(vars) < 25 {
		t.Fatalf("only %d variables", len(vars))
	}
	for _, v := range vars {
		if !strings.Contains(out.String(), v.Name) {
			t.Errorf("--help does not list %s", v.Name)
		}
		if v.Desc == "" {
			t.Errorf("%s has no description", v.Name)
		}
	}
	if !strings.Contains(out.String(), "168h") || !strings.Contains(out.String(), "127.0.0.1:4222") {
		t.Error("--help does not show defaults")
	}
}

func TestConfigErrorNamesVariable(t *testing.T) {
	for env, want := range map[string]string{
		"STREAM_MAX_AGE=soon":       "STREAM_MAX_AGE",
		"NATS_SYNC=sometimes":       "NATS_SYNC",
		"INGEST_ADDR=0.0.0.0:8080":  "INGEST_API_KEY",
		"STREAM_MAX_BYTES=10GiB":    "NATS_MAX_STORE",
		"SUBJECT_PREFIX=a.b":        "SUBJECT_PREFIX",
		"INGEST_API_KEY_FILE=/nope": "INGEST_API_KEY_FILE",
		"NATS_MAX_PAYLOAD=lots":     "NATS_MAX_PAYLOAD",
	} {
		var out bytes.Buffer
		code := run(context.Background(), nil, []string{env, "DATA_DIR=" + t.TempDir()}, &out, &out)
		if code != 2 || !strings.Contains(out.String(), want) {
			t.Errorf("%s: exit %d, %q; want exit 2 naming %s", env, code, out.String(), want)
		}
	}
}

// Every duration variable takes days, as --since does; a bad one is named.
func TestConfigDurationsTakeDays(t *testing.T) {
	const day = 24 * time.Hour
	cfg, err := app.Load[config]([]string{"STREAM_MAX_AGE=7d", "ARCHIVE_MAX_AGE=90d", "WEBHOOK_BACKOFF=1m,1h,1d",
		"WEBHOOK_URL=http://127.0.0.1:1/hook", "SYNC_INTERVAL=1d", "STREAM_DUPLICATE_WINDOW=1d", "NATS_SYNC=1d"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.Stream.MaxAge != 7*day || cfg.Archive.Archive.MaxAge != 90*day || cfg.Producer.Stream.DuplicateWindow != day {
		t.Errorf("STREAM_MAX_AGE %v, ARCHIVE_MAX_AGE %v, STREAM_DUPLICATE_WINDOW %v", cfg.Producer.Stream.MaxAge, cfg.Archive.Archive.MaxAge, cfg.Producer.Stream.DuplicateWindow)
	}
	if b := cfg.Webhook.Runtime.Backoff; len(b) != 3 || b[2] != day {
		t.Errorf("WEBHOOK_BACKOFF %v", b)
	}
	if _, interval, err := cfg.Embedded.SyncPolicy(); err != nil || interval != day {
		t.Errorf("NATS_SYNC=1d: %v %v", interval, err)
	}
	for env, want := range map[string]string{
		"STREAM_MAX_AGE=7x":       "STREAM_MAX_AGE: ",
		"ARCHIVE_MAX_AGE=1d2d":    "ARCHIVE_MAX_AGE: ",
		"WEBHOOK_BACKOFF=1m,7dd":  "WEBHOOK_BACKOFF: ",
		"SQL_SOURCE_LEASE=7 days": "SQL_SOURCE_LEASE: ",
	} {
		if _, err := app.Load[config]([]string{env}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming the variable", env, err)
		}
	}
}

func TestSecretFromFileNeverLogged(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("sup3r-s3cret\n"), 0o600)
	cfg, err := app.Load[config]([]string{"INGEST_API_KEY_FILE=" + keyFile})
	if err != nil || cfg.Producer.Ingest.APIKey != "sup3r-s3cret" {
		t.Fatalf("key from file: %q %v", cfg.Producer.Ingest.APIKey, err)
	}
	if _, err := app.Load[config]([]string{"INGEST_API_KEY_FILE=" + keyFile, "INGEST_API_KEY=x"}); err == nil {
		t.Error("both set must be an error")
	}
	p := startMesh(t, dir, "INGEST_API_KEY_FILE="+keyFile, "LOG_LEVEL=debug")
	p.stop(t)
	if strings.Contains(p.log.String(), "sup3r-s3cret") {
		t.Error("the API key was logged")
	}
}

// Every address a variable of eventmesh defaults to is one TestMain holds,
// so a test that leaves it at its default fails.
func TestDefaultAddrsHeld(t *testing.T) {
	for _, v := range append(app.Vars(&config{}), app.Vars(&adminConfig{})...) {
		host, port, err := net.SplitHostPort(v.Default)
		if err != nil || host == "" || port == "0" {
			continue
		}
		if !slices.Contains(harness.DefaultAddrs, v.Default) {
			t.Errorf("%s defaults to %s, which harness.DefaultAddrs lacks", v.Name, v.Default)
		}
	}
}

// mesh is a running eventmesh process.
type mesh struct {
	cmd              *exec.Cmd
	ingest, natsAddr string
	log              *natstest.LogBuffer
	done             chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startMesh(t *testing.T, dataDir string, env ...string) *mesh {
	t.Helper()
	p := &mesh{ingest: freeAddr(t), natsAddr: freeAddr(t), log: &natstest.LogBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary)
	// Every listener on a free port: the defaults may be taken (by the mesh
	// of the README's "Try it"; TestMain holds them).
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "DATA_DIR=" + dataDir, "NATS_LISTEN=" + p.natsAddr,
		"INGEST_ADDR=" + p.ingest, "ARCHIVE_ADDR=" + freeAddr(t)}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	natstest.WaitFor(t, 30*time.Second, "eventmesh ready", func() bool {
		select {
		case err := <-p.done:
			t.Fatalf("eventmesh exited: %v\n%s", err, p.log)
		default:
		}
		resp, err := http.Get("http://" + p.ingest + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *mesh) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("eventmesh exit: %v\n%s", err, p.log)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("eventmesh did not stop on SIGTERM\n%s", p.log)
	}
}

func postEvent(client *http.Client, ingest, body string) (int, error) {
	resp, err := client.Post("http://"+ingest+"/events", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// streamIDs returns the messages of ENMESHED by ce-id, read over TCP; an id
// stored twice fails the test.
func streamIDs(t *testing.T, natsAddr string) map[string]jetstream.RawStreamMsg {
	t.Helper()
	js := natstest.JetStream(t, natstest.Connect(t, "nats://"+natsAddr))
	ctx := context.Background()
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]jetstream.RawStreamMsg{}
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		id := m.Header.Get(router.HeaderID)
		if first, dup := ids[id]; dup {
			t.Errorf("ce-id %s stored twice: seq %d and %d", id, first.Sequence, seq)
		}
		ids[id] = *m
	}
	return ids
}

const sample = `{"trigger":"transport.messageReceived","data":{"id":"MSGq8WnJ3kT0aZp4RcVx","isOwn":false,"content":{"@type":"Mail","subject":"Invoice"}}}`
const sampleData = `{"id":"MSGq8WnJ3kT0aZp4RcVx","isOwn":false,"content":{"@type":"Mail","subject":"Invoice"}}`

// The end-to-end contract, against the real binary over TCP: one POST, one
// message with every header; the same POST again, still one; a restart on
// the same store keeps it.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startMesh(t, dir)
	for i := 0; i < 2; i++ {
		if code, err := postEvent(http.DefaultClient, p.ingest, sample); err != nil || code != 200 {
			t.Fatalf("POST %d: %d %v", i, code, err)
		}
	}
	check := func(natsAddr string) {
		ids := streamIDs(t, natsAddr)
		if len(ids) != 1 {
			t.Fatalf("stream holds %d events, want 1", len(ids))
		}
		for id, m := range ids {
			if m.Subject != "enmeshed.transport.messageReceived" || string(m.Data) != sampleData {
				t.Errorf("message %s %s", m.Subject, m.Data)
			}
			for _, h := range []string{"ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time", "ce-datacontenttype", "Nats-Msg-Id", "eventmesh-origin"} {
				if m.Header.Get(h) == "" {
					t.Errorf("header %s missing", h)
				}
			}
			if m.Header.Get("Nats-Msg-Id") != id || m.Header.Get("eventmesh-origin") != "webhook" {
				t.Errorf("headers %v", m.Header)
			}
		}
	}
	check(p.natsAddr)
	p.stop(t)
	p = startMesh(t, dir)
	check(p.natsAddr)
	p.stop(t)
}

// SIGTERM during a burst of POSTs: every POST that got a 2xx is in the
// stream afterwards.
func TestSIGTERMDuringBurstLosesNothing(t *testing.T) {
	dir := t.TempDir()
	p := startMesh(t, dir)
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := fmt.Sprintf(`{"id":"MSG-%d-%d"}`, w, i)
				code, err := postEvent(client, p.ingest, `{"trigger":"transport.messageReceived","data":`+data+`}`)
				if err != nil {
					return // the server is gone
				}
				if code >= 200 && code < 300 {
					id, _ := router.EventID(router.DefaultSource, "transport.messageReceived", []byte(data))
					mu.Lock()
					accepted = append(accepted, id)
					mu.Unlock()
				}
			}
		}()
	}
	natstest.WaitFor(t, 30*time.Second, "200 accepted events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 200
	})
	p.stop(t)
	close(stop)
	wg.Wait()

	p = startMesh(t, dir)
	ids := streamIDs(t, p.natsAddr)
	missing := 0
	for _, id := range accepted {
		if _, ok := ids[id]; !ok {
			missing++
		}
	}
	t.Logf("%d POSTs got a 2xx before and during SIGTERM; %d messages in the stream", len(accepted), len(ids))
	if missing > 0 {
		t.Errorf("%d acknowledged events are not in the stream", missing)
	}
	p.stop(t)
}

// docs/configuration.md documents every variable the binary reads.
func TestConfigurationDocListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range app.Vars(&config{}) {
		if !strings.Contains(string(doc), "`"+v.Name+"`") {
			t.Errorf("docs/configuration.md does not document %s", v.Name)
		}
	}
}

// Settings for an external server are flagged when the embedded one runs
// instead; the embedded server's own address in NATS_URL is not (the
// README's commands set both so that admin commands reach it), nor are
// credentials (the embedded server takes them).
func TestIgnoredNATS(t *testing.T) {
	listen := "127.0.0.1:14222"
	for _, tc := range []struct {
		c    streams.ConnConfig
		want bool
	}{
		{streams.ConnConfig{}, false},
		{streams.ConnConfig{URL: "nats://127.0.0.1:14222"}, false},
		{streams.ConnConfig{URL: "nats://nats.example:4222"}, true},
		{streams.ConnConfig{URL: "nats://127.0.0.1:14222,nats://other:4222"}, true},
		{streams.ConnConfig{Context: "prod"}, true},
		{streams.ConnConfig{Creds: "/etc/user.creds"}, false},
		{streams.ConnConfig{URL: "nats://127.0.0.1:14222", Token: "t"}, false},
		{streams.ConnConfig{URL: "nats://127.0.0.1:14222", User: "mesh", Password: "p"}, false},
	} {
		if got := ignoredNATS(tc.c, listen); got != tc.want {
			t.Errorf("ignoredNATS(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

// The embedded server takes NATS_USER/NATS_PASSWORD, NATS_TOKEN, or a
// NATS_SERVER_CONFIG file: an anonymous client is refused over TCP, the mesh
// itself stores an event, and a client with credentials reads it; the admin
// commands reach the server with the same variables.
func TestEmbeddedServerAuth(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(`
accounts {
  MESH {
    jetstream: enabled
    users = [ {user: mesh, password: m3sh-pw}, {user: reader, password: r3ad-pw} ]
  }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		env      []string
		userinfo string // of a client reading the stream
	}{
		{"user", []string{"NATS_USER=mesh", "NATS_PASSWORD=s3cret-pw"}, "mesh:s3cret-pw@"},
		{"token", []string{"NATS_TOKEN=t0ken-t0ken"}, "t0ken-t0ken@"},
		{"config file", []string{"NATS_SERVER_CONFIG=" + conf, "NATS_USER=mesh", "NATS_PASSWORD=m3sh-pw"}, "reader:r3ad-pw@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startMesh(t, t.TempDir(), tc.env...)
			if nc, err := nats.Connect("nats://" + p.natsAddr); err == nil {
				nc.Close()
				t.Fatal("an anonymous client connected to the embedded server")
			} else if !streams.AuthError(err) {
				t.Fatalf("anonymous client: %v, want an authorization violation", err)
			}
			if code, err := postEvent(http.DefaultClient, p.ingest, sample); err != nil || code != 200 {
				t.Fatalf("POST: %d %v\n%s", code, err, p.log)
			}
			if ids := streamIDs(t, tc.userinfo+p.natsAddr); len(ids) != 1 {
				t.Errorf("stream holds %d events, want 1", len(ids))
			}
			var out bytes.Buffer
			admin := append([]string{"NATS_LISTEN=" + p.natsAddr}, tc.env...)
			if code := run(context.Background(), []string{"consumer", "ls"}, admin, &out, &out); code != 0 || !strings.Contains(out.String(), "archiver") {
				t.Errorf("consumer ls with the credentials: exit %d\n%s", code, &out)
			}
			out.Reset()
			if code := run(context.Background(), []string{"status"}, admin, &out, &out); code == 2 {
				t.Errorf("status with the credentials: exit 2\n%s", &out)
			}
			out.Reset()
			code := run(context.Background(), []string{"consumer", "ls"}, []string{"NATS_LISTEN=" + p.natsAddr}, &out, &out)
			if code != 1 || !strings.Contains(out.String(), "NATS_USER") {
				t.Errorf("consumer ls without credentials: exit %d, want 1 naming NATS_USER\n%s", code, &out)
			}
			p.stop(t)
		})
	}
}

// eventmesh refuses to start an embedded server anyone could use beyond
// this machine, and credentials it cannot use; the loopback default needs
// none (TestEndToEnd).
func TestEmbeddedServerRefusals(t *testing.T) {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte("authorization { users = [ {user: mesh, password: m3sh-pw} ] }\n"), 0o600)
	for _, tc := range []struct {
		env  []string
		code int
		want []string
	}{
		{[]string{"NATS_LISTEN=0.0.0.0:" + port}, 2, []string{"NATS_LISTEN", "NATS_USER", "NATS_SERVER_CONFIG"}},
		{[]string{"NATS_LISTEN=:" + port}, 2, []string{"NATS_LISTEN"}},
		{[]string{"NATS_LISTEN=[::]:" + port}, 2, []string{"NATS_LISTEN"}},
		{[]string{"NATS_LISTEN=0.0.0.0:" + port, "NATS_PASSWORD=p"}, 2, []string{"NATS_USER"}},
		{[]string{"NATS_CREDS=/etc/nats/user.creds"}, 2, []string{"NATS_CREDS"}},
		{[]string{"NATS_EMBEDDED=false", "NATS_SERVER_CONFIG=" + conf}, 2, []string{"NATS_SERVER_CONFIG"}},
		{[]string{"NATS_SERVER_CONFIG=" + conf}, 1, []string{"NATS_SERVER_CONFIG", "NATS_USER", "NATS_CREDS"}},
		{[]string{"NATS_SERVER_CONFIG=" + conf, "NATS_USER=mesh", "NATS_PASSWORD=wrong"}, 1, []string{"NATS_SERVER_CONFIG", "NATS_USER"}},
	} {
		var out bytes.Buffer
		env := append([]string{"DATA_DIR=" + t.TempDir(), "NATS_LISTEN=" + freeAddr(t), "INGEST_ADDR=" + freeAddr(t), "ARCHIVE_ADDR="}, tc.env...)
		// Bounded: a mesh that starts (the defect) stops after a while and
		// fails the test with exit 0 rather than hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		code := run(ctx, nil, env, &out, &out)
		cancel()
		for _, w := range tc.want {
			if code != tc.code || !strings.Contains(out.String(), w) {
				t.Errorf("%v: exit %d, want %d with an error naming %s\n%s", tc.env, code, tc.code, w, &out)
				break
			}
		}
	}
}

// The archive API on loopback: with ARCHIVE_API_KEY set, a request without
// it gets 401; without a key it answers, and the start log says that it
// serves event data without a key.
func TestArchiveAPIOnLoopback(t *testing.T) {
	const warning = "serves every archived event's data without a key on loopback"
	get := func(addr, key string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/events", nil)
		if key != "" {
			req.Header.Set("X-API-KEY", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	addr := freeAddr(t)
	p := startMesh(t, t.TempDir(), "ARCHIVE_ADDR="+addr, "ARCHIVE_API_KEY=arch1ve-key")
	if code := get(addr, ""); code != 401 {
		t.Errorf("with a key set, no key: %d, want 401", code)
	}
	if code := get(addr, "wrong"); code != 401 {
		t.Errorf("with a key set, a wrong key: %d, want 401", code)
	}
	if code := get(addr, "arch1ve-key"); code != 200 {
		t.Errorf("the key: %d, want 200", code)
	}
	p.stop(t)
	if strings.Contains(p.log.String(), warning) {
		t.Errorf("warned about no key although one is set:\n%s", p.log)
	}

	addr = freeAddr(t)
	p = startMesh(t, t.TempDir(), "ARCHIVE_ADDR="+addr)
	if code := get(addr, ""); code != 200 {
		t.Errorf("without a key on loopback: %d, want 200", code)
	}
	p.stop(t)
	if !strings.Contains(p.log.String(), warning) {
		t.Errorf("no warning that the archive API serves data without a key:\n%s", p.log)
	}
}

// With BRIDGE_URL set, eventmesh runs the bridge: its durable exists before
// ingest reports ready, and a broker that cannot be reached makes the
// bridge unready (logged, without the URL's password) but never ingest.
func TestBridgeNeverAffectsIngestReadiness(t *testing.T) {
	const password = "bridge-pw-not-for-logs"
	closed := freeAddr(t) // nothing listens there
	p := startMesh(t, t.TempDir(), "BRIDGE_URL=amqp://guest:"+password+"@"+closed+"/", "BRIDGE_AMQP_EXCHANGE=enmeshed-missing",
		"BRIDGE_DURABLE=bridge-readiness")
	js := natstest.JetStream(t, natstest.Connect(t, "nats://"+p.natsAddr))
	if _, err := js.Consumer(context.Background(), streams.Events, "bridge-readiness"); err != nil {
		t.Fatalf("the bridge's durable after ingest's readiness: %v", err)
	}
	natstest.WaitFor(t, 20*time.Second, "the bridge's not-ready log", func() bool { return strings.Contains(p.log.String(), "broker not ready") })
	resp, err := http.Get("http://" + p.ingest + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("ingest /readyz %d while the bridge's broker is down, want 200", resp.StatusCode)
	}
	p.stop(t)
	if strings.Contains(p.log.String(), password) {
		t.Errorf("the log shows BRIDGE_URL's password:\n%s", p.log)
	}
}
