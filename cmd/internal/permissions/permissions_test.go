package permissions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/cmd/internal/permissions"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

var permSubjects = router.MustSubjects("enmeshed")

// permsFor is permissions.For that fails the test on error.
func permsFor(t *testing.T, binary, durable string) permissions.Set {
	t.Helper()
	p, err := permissions.For(binary, permSubjects, durable)
	if err != nil {
		t.Fatalf("permissions.For(%s, %q): %v", binary, durable, err)
	}
	return p
}

// The lists are least privilege in form: no full wildcards, every API
// subject scoped to a stream of the mesh, replies subscribe-only, and each
// entry described for the documentation.
func TestPermissionsForShape(t *testing.T) {
	known := []string{streams.Events, streams.DLQ, streams.Advisories, streams.Outcomes, "KV_" + streams.SyncBucket, "KV_" + streams.ConsumersBucket}
	for binary, durable := range map[string]string{permissions.BinaryProducer: "", permissions.BinaryWebhook: "webhook-0a1b2c3d",
		permissions.BinaryAutoAccept: "", permissions.BinaryArchiver: "", permissions.BinaryStatus: "", permissions.BinaryBridge: "bridge-0a1b2c3d"} {
		p := permsFor(t, binary, durable)
		if !slices.Equal(p.Subscribe, []string{"_INBOX.>"}) {
			t.Errorf("%s subscribes to %v, want only _INBOX.>", binary, p.Subscribe)
		}
		seen := map[string]bool{}
		for _, s := range p.Publish {
			switch {
			case seen[s]:
				t.Errorf("%s: %s listed twice", binary, s)
			case s == ">" || strings.HasSuffix(s, "$JS.API.>") || strings.HasPrefix(s, "$JS.>") || strings.HasPrefix(s, "_INBOX"):
				t.Errorf("%s: %s is too wide (or a reply subject)", binary, s)
			case strings.HasPrefix(s, "$JS.API.") && s != "$JS.API.INFO":
				tok, i := strings.Split(s, "."), 2+len(strings.Split(apiKind(s), "."))
				if i >= len(tok) || !slices.Contains(known, tok[i]) {
					t.Errorf("%s: %s is not scoped to a stream of the mesh", binary, s)
				}
				if strings.Contains(s, "*") {
					t.Errorf("%s: %s has a wildcard", binary, s)
				}
			}
			seen[s] = true
			if !strings.Contains(p.ServerConfig(), fmt.Sprintf("%q", s)) {
				t.Errorf("%s: ServerConfig lacks %s", binary, s)
			}
		}
		for _, line := range strings.Split(p.ServerConfig(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), `"`) && !strings.Contains(line, "# ") {
				t.Errorf("%s: entry without a description: %s", binary, line)
			}
		}
	}
	// A consumer touches its own durable only, and writes its own
	// processes' states only.
	p := permsFor(t, permissions.BinaryWebhook, "webhook-0a1b2c3d")
	for _, s := range p.Publish {
		if strings.Contains(s, "CONSUMER.") && !strings.Contains(s, ".webhook-0a1b2c3d") {
			t.Errorf("webhook: %s names no durable of its own", s)
		}
	}
	if state := "$KV." + streams.ConsumersBucket + ".webhook-0a1b2c3d.*"; !slices.Contains(p.Publish, state) {
		t.Errorf("webhook: no %s", state)
	}
	// Status only reads: no event, key, ack or change of a stream or durable.
	for _, s := range permsFor(t, permissions.BinaryStatus, "").Publish {
		if !strings.HasPrefix(s, "$JS.API.") || slices.Contains([]string{"STREAM.CREATE", "STREAM.UPDATE", "CONSUMER.CREATE", "CONSUMER.PAUSE"}, apiKind(s)) {
			t.Errorf("status: %s is not a read", s)
		}
	}
	for _, bad := range []struct{ binary, durable string }{
		{"eventmesh", ""}, {permissions.BinaryWebhook, ""}, {permissions.BinaryWebhook, "a.b"}, {permissions.BinaryWebhook, ">"},
		{permissions.BinaryProducer, "x"}, {permissions.BinaryAutoAccept, "other"}, {permissions.BinaryArchiver, "other"},
		{permissions.BinaryStatus, "webhook-0a1b2c3d"}, {permissions.BinaryBridge, ""}, {permissions.BinaryBridge, "a.b"},
	} {
		if _, err := permissions.For(bad.binary, permSubjects, bad.durable); err == nil {
			t.Errorf("permissions.For(%s, %q) accepted", bad.binary, bad.durable)
		}
	}
	if _, err := permissions.For(permissions.BinaryProducer, router.Subjects{}, ""); err == nil {
		t.Error("permissions.For accepted the zero Subjects")
	}
}

// apiKind is the request kind of a JetStream API subject, e.g.
// "CONSUMER.MSG.NEXT" of $JS.API.CONSUMER.MSG.NEXT.S.D.
func apiKind(s string) string {
	rest := strings.TrimPrefix(s, "$JS.API.")
	for _, k := range []string{"STREAM.MSG.GET", "CONSUMER.MSG.NEXT", "STREAM.INFO", "STREAM.CREATE", "STREAM.UPDATE",
		"CONSUMER.INFO", "CONSUMER.CREATE", "CONSUMER.PAUSE", "CONSUMER.LIST", "DIRECT.GET"} {
		if strings.HasPrefix(rest, k+".") {
			return k
		}
	}
	return rest
}

// ServerConfig is what a nats-server reads back: the documented block
// gives the permissions the binaries are tested under.
func TestPermissionsServerConfig(t *testing.T) {
	var conf strings.Builder
	conf.WriteString("authorization {\n  users = [\n")
	want := map[string]permissions.Set{}
	for _, b := range []string{permissions.BinaryProducer, permissions.BinaryWebhook, permissions.BinaryAutoAccept, permissions.BinaryArchiver,
		permissions.BinaryStatus, permissions.BinaryBridge} {
		durable := ""
		switch b {
		case permissions.BinaryWebhook:
			durable = "webhook-0a1b2c3d"
		case permissions.BinaryBridge:
			durable = "bridge-0a1b2c3d"
		}
		p := permsFor(t, b, durable)
		want[b] = p
		fmt.Fprintf(&conf, "    {\n      user: %q\n      password: %q\n%s    }\n", b, "pw-"+b, p.ServerConfig())
	}
	conf.WriteString("  ]\n}\n")
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server does not read the rendered block: %v\n%s", err, conf.String())
	}
	if len(opts.Users) != len(want) {
		t.Fatalf("%d users read back, want %d", len(opts.Users), len(want))
	}
	for _, u := range opts.Users {
		p := u.Permissions
		if p == nil || p.Publish == nil || p.Subscribe == nil {
			t.Fatalf("%s: permissions not read back: %+v", u.Username, p)
		}
		if !slices.Equal(p.Publish.Allow, want[u.Username].Publish) || !slices.Equal(p.Subscribe.Allow, want[u.Username].Subscribe) {
			t.Errorf("%s read back as publish %v subscribe %v, want %+v", u.Username, p.Publish.Allow, p.Subscribe.Allow, want[u.Username])
		}
	}
}

// violations records the permission violations the server reports to one
// connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		v.mu.Lock()
		v.errs = append(v.errs, err.Error())
		v.mu.Unlock()
	}
}

func (v *violations) list() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.errs)
}

func serverPermissions(p permissions.Set) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Clone(p.Publish)},
		Subscribe: &server.SubjectPermission{Allow: slices.Clone(p.Subscribe)},
	}
}

// startAuthServer starts a JetStream server with one user per entry of
// users (password = user name) and an admin user with every right, with
// the given nats-server feature flags.
func startAuthServer(t *testing.T, users map[string]permissions.Set, featureFlags map[string]bool) string {
	t.Helper()
	us := []*server.User{{Username: "admin", Password: "admin"}}
	for name, p := range users {
		us = append(us, &server.User{Username: name, Password: name, Permissions: serverPermissions(p)})
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		JetStreamMaxStore: 4 << 30, JetStreamMaxMemory: 64 << 20, NoSigs: true, NoLog: true, Users: us,
		FeatureFlags: featureFlags,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// connectAs connects as user the way the binaries do (streams.Connect),
// recording permission violations in v.
func connectAs(t *testing.T, url, user string, v *violations) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := streams.Connect(ctx, streams.ConnConfig{URL: url, User: user, Password: user}, "eventmesh-"+user,
		natstest.Logger(t), nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func load[T any](t *testing.T, env ...string) T {
	t.Helper()
	c, err := app.Load[T](env)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// jetStream is the JetStream context the binaries make of nc.
func jetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := streams.NewJetStream(nc, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// ingestResult is the ingest endpoint's answer to one event.
type ingestResult struct {
	ID        string `json:"id"`
	StreamSeq uint64 `json:"stream_seq"`
}

// dlqCount returns how many dead letters of durable ENMESHED_DLQ holds.
func dlqCount(t *testing.T, js jetstream.JetStream, durable string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, streams.DLQ)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(permSubjects.DLQFor(durable)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// hasOutcome reports whether the archive holds event id with an outcome
// result of consumer.
func hasOutcome(ctx context.Context, st store.Store, id, consumer, result string) bool {
	e, err := st.Get(ctx, id)
	if err != nil {
		return false
	}
	for _, o := range e.Outcomes {
		if o.Consumer == consumer && o.Result == result {
			return true
		}
	}
	return false
}

// receiver is the webhook endpoint: 400 for events marked DEAD (a dead
// letter), 503 once for those marked RETRY, 410 for GONE (a pause), 204
// otherwise.
type receiver struct {
	mu        sync.Mutex
	retried   bool
	delivered map[string]bool // webhook-id (= ce-id) answered 2xx
	srv       *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{delivered: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		status := http.StatusNoContent
		switch {
		case bytes.Contains(body, []byte("DEAD")):
			status = http.StatusBadRequest
		case bytes.Contains(body, []byte("GONE")):
			status = http.StatusGone
		case bytes.Contains(body, []byte("RETRY")) && !rc.retried:
			rc.retried, status = true, http.StatusServiceUnavailable
		}
		if status < 300 {
			rc.delivered[r.Header.Get(webhook.HeaderID)] = true
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got(id string) bool { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.delivered[id] }

// Each binary runs as its own NATS user with exactly permissions.For and
// does its whole job: the producer creates and updates ENMESHED, ingests
// and polls the Connector; the webhook consumer delivers, retries,
// dead-letters, records outcomes, catches a max-deliveries advisory and
// pauses; auto-accept accepts a relationship and pauses on a rejected API
// key; the archiver archives events and outcomes. No permission violation
// may occur, with the server's acks in the current format and in the v2
// format a later nats-server may switch to. A sub-test removes one needed
// entry and sees the violation.
func TestPermissionsLeastPrivilege(t *testing.T) {
	t.Run("acks v1", func(t *testing.T) { runMesh(t, nil) })
	t.Run("acks v2", func(t *testing.T) { runMesh(t, map[string]bool{"js_ack_fc_v2": true}) })
}

// mesh is one run of the binaries against one server.
type mesh struct {
	t     *testing.T
	ctx   context.Context
	admin jetstream.JetStream
	viol  map[string]*violations
}

// wait polls cond until it holds; a permission violation of any binary,
// or 20 seconds, fails the test at once.
func (m *mesh) wait(what string, cond func() bool) {
	m.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if v := m.violation(); v != "" {
			m.t.Fatalf("waiting for %s: %s", what, v)
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// violation returns the first permission violation of any binary, or "".
func (m *mesh) violation() string {
	for b, v := range m.viol {
		if errs := v.list(); len(errs) > 0 {
			return b + ": " + errs[0]
		}
	}
	return ""
}

// check fails the test on err, naming a permission violation if there was one.
func (m *mesh) check(what string, err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("%s: %v (permission violation: %q)", what, err, m.violation())
	}
}

// startProducer starts the producer with env on its connection, giving
// up after 20 seconds.
func (m *mesh) startProducer(nc *nats.Conn, env ...string) *producing.Producer {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
	defer cancel()
	p, err := producing.Start(ctx, load[producing.Config](m.t, env...), nc, prometheus.NewRegistry(), natstest.Logger(m.t))
	m.check("start the producer", err)
	return p
}

// post posts an event to ingest.
func (m *mesh) post(ingest, trigger string, data any) ingestResult {
	m.t.Helper()
	body, _ := json.Marshal(map[string]any{"trigger": trigger, "data": data})
	resp, err := http.Post("http://"+ingest+"/events", "application/json", bytes.NewReader(body))
	m.check("POST /events", err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r ingestResult
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil || r.ID == "" {
		m.check("POST /events", fmt.Errorf("%d %s", resp.StatusCode, b))
	}
	return r
}

// bridgeRun is the bridge of a run: its configuration and the Redis
// stream it publishes to.
type bridgeRun struct {
	cfg   bridge.Config
	redis *redis.Client
	key   string
}

// newBridgeRun returns the bridge of a run into a Redis stream of its own
// on EVENTMESH_TEST_REDIS, deleted with the test; nil without a Redis.
func newBridgeRun(t *testing.T) *bridgeRun {
	t.Helper()
	u := os.Getenv("EVENTMESH_TEST_REDIS")
	if u == "" {
		t.Log("EVENTMESH_TEST_REDIS is not set (e.g. redis://127.0.0.1:6379/0): the bridge is left out")
		return nil
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_REDIS: %v", err)
	}
	r := &bridgeRun{redis: redis.NewClient(opt), key: "eventmesh-permissions-" + router.RandomKey()}
	t.Cleanup(func() { r.redis.Del(context.Background(), r.key); r.redis.Close() })
	r.cfg = load[bridge.Config](t, "BRIDGE_URL="+u, "BRIDGE_REDIS_STREAM="+r.key, "BRIDGE_START=all", "BRIDGE_BACKOFF=100ms")
	return r
}

// has reports whether the stream holds an entry of each event id.
func (r *bridgeRun) has(ctx context.Context, ids ...string) bool {
	entries, err := r.redis.XRange(ctx, r.key, "-", "+").Result()
	if err != nil {
		return false
	}
	seen := map[string]bool{}
	for _, e := range entries {
		id, _ := e.Values["id"].(string)
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			return false
		}
	}
	return true
}

func runMesh(t *testing.T, featureFlags map[string]bool) {
	log := natstest.Logger(t)
	const apiKey = "connector-key-for-permissions"
	double, err := connectortest.NewServer(apiKey, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(double.Close)
	rc := newReceiver(t)
	whCfg := load[webhook.ConsumerConfig](t, "WEBHOOK_URL="+rc.srv.URL+"/hook", "WEBHOOK_START=all", "WEBHOOK_BACKOFF=100ms")
	whDurable := whCfg.Webhook.DurableName()
	const brokenUser, brokenDurable = "webhook-nodlq", "webhook-nodlq"

	perms := map[string]permissions.Set{
		permissions.BinaryProducer:   permsFor(t, permissions.BinaryProducer, ""),
		permissions.BinaryWebhook:    permsFor(t, permissions.BinaryWebhook, whDurable),
		permissions.BinaryAutoAccept: permsFor(t, permissions.BinaryAutoAccept, ""),
		permissions.BinaryArchiver:   permsFor(t, permissions.BinaryArchiver, ""),
		permissions.BinaryStatus:     permsFor(t, permissions.BinaryStatus, ""),
	}
	// The bridge, into a Redis stream of its own, when there is a Redis.
	br := newBridgeRun(t)
	if br != nil {
		perms[permissions.BinaryBridge] = permsFor(t, permissions.BinaryBridge, br.cfg.DurableName())
	}
	// The broken user lacks one needed entry: the webhook's dead letters.
	broken := permsFor(t, permissions.BinaryWebhook, brokenDurable)
	dlqEntry := permSubjects.DLQFor(brokenDurable)
	if !slices.Contains(broken.Publish, dlqEntry) {
		t.Fatalf("the webhook's permissions lack %s: %v", dlqEntry, broken.Publish)
	}
	broken.Publish = slices.DeleteFunc(slices.Clone(broken.Publish), func(s string) bool { return s == dlqEntry })
	users := map[string]permissions.Set{brokenUser: broken}
	for b, p := range perms {
		users[b] = p
	}
	url := startAuthServer(t, users, featureFlags)
	m := &mesh{t: t, viol: map[string]*violations{}}
	conns := map[string]*nats.Conn{}
	for b := range perms {
		m.viol[b] = &violations{}
		conns[b] = connectAs(t, url, b, m.viol[b])
	}
	adminNC, err := nats.Connect(url, nats.UserInfo("admin", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adminNC.Close)
	m.admin = natstest.JetStream(t, adminNC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.ctx = ctx

	// The producer creates ENMESHED and the sync bucket, stops, and starts
	// again with another STREAM_MAX_AGE, updating both.
	producerEnv := []string{"INGEST_ADDR=127.0.0.1:0", "CONNECTOR_URL=" + double.URL(), "CONNECTOR_API_KEY=" + apiKey,
		"SYNC_INTERVAL=1s", "STREAM_MAX_BYTES=64MiB"}
	first := m.startProducer(conns[permissions.BinaryProducer], append(producerEnv, "STREAM_MAX_AGE=2h")...)
	m.wait("a first sync round", func() bool { return first.Poller.Status().Rounds >= 1 })
	first.Shutdown()
	prod := m.startProducer(conns[permissions.BinaryProducer], producerEnv...)
	if age := prod.Stream.CachedInfo().Config.MaxAge; age != 168*time.Hour {
		t.Fatalf("ENMESHED not updated: max age %s", age)
	}
	ingest := prod.HTTP.Addr()
	double.SetWebhook("http://"+ingest+"/events", nil)

	// ENMESHED_DLQ as an earlier version created it (discard old): the
	// consumers switch it to discard new.
	oldDLQ := streams.DLQStream(permSubjects)
	oldDLQ.Discard = jetstream.DiscardOld
	_, err = m.admin.CreateStream(ctx, oldDLQ)
	m.check("create the old DLQ", err)

	// The three consumers, each on its own connection.
	reg := prometheus.NewRegistry()
	wh, err := webhook.New(jetStream(t, conns[permissions.BinaryWebhook]), permSubjects, whCfg, consumers.NewMetrics(reg), log)
	m.check("webhook", err)
	aaCfg := load[autoaccept.ConsumerConfig](t, "AUTOACCEPT_ENABLED=true", "AUTOACCEPT_BACKOFF=100ms")
	reg = prometheus.NewRegistry()
	aa, err := autoaccept.New(jetStream(t, conns[permissions.BinaryAutoAccept]), permSubjects, aaCfg, double.ClientConfig(), consumers.NewMetrics(reg), reg, log)
	m.check("auto-accept", err)
	arCfg := load[archiving.Config](t, "ARCHIVE_DSN="+filepath.Join(t.TempDir(), "archive.db"), "ARCHIVE_BACKOFF=100ms")
	arCfg.Archive.Addr = "" // no HTTP API: it does not touch NATS
	reg = prometheus.NewRegistry()
	arch, err := archiving.New(ctx, jetStream(t, conns[permissions.BinaryArchiver]), permSubjects, arCfg, "", consumers.NewMetrics(reg), reg, log)
	m.check("archiver", err)
	runners := []app.Runner{wh, aa, arch.Archiver}
	if br != nil {
		reg = prometheus.NewRegistry()
		b, err := bridge.New(jetStream(t, conns[permissions.BinaryBridge]), permSubjects, br.cfg, consumers.NewMetrics(reg), log)
		m.check("bridge", err)
		runners = append(runners, b)
	}
	rts := app.StartRuntimes(ctx, log, runners...)
	m.wait("consumers ready", func() bool { return rts.Ready(ctx) == nil })
	dlq, err := m.admin.Stream(ctx, streams.DLQ)
	m.check("look up the DLQ", err)
	if d := dlq.CachedInfo().Config.Discard; d != jetstream.DiscardNew {
		t.Errorf("ENMESHED_DLQ discards %v after the consumers started", d)
	}
	resp, err := http.Get("http://" + ingest + "/readyz")
	m.check("producer /readyz", err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		m.check("producer /readyz", errors.New(resp.Status))
	}

	// Webhook: delivered, retried then delivered, dead-lettered (with
	// outcomes for each, archived below).
	ok := m.post(ingest, "transport.messageReceived", map[string]any{"id": "MSGpermOK"})
	retry := m.post(ingest, "transport.messageReceived", map[string]any{"id": "MSGpermRETRY"})
	dead := m.post(ingest, "transport.messageReceived", map[string]any{"id": "MSGpermDEAD"})
	m.wait("webhook deliveries", func() bool { return rc.got(ok.ID) && rc.got(retry.ID) })
	m.wait("webhook dead letter", func() bool { return dlqCount(t, m.admin, whDurable) == 1 })
	if br != nil {
		m.wait("bridge deliveries", func() bool { return br.has(ctx, ok.ID, retry.ID, dead.ID) })
	}

	// Auto-accept: a relationship the peer created appears at the next
	// sync, the Connector's webhook brings it to ingest, and it is accepted.
	rel := double.AddIncomingRelationship(connectortest.NewAddress(), "")
	client, err := connector.New(double.ClientConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	m.wait("relationship accepted", func() bool {
		r, err := client.Relationship(ctx, rel.ID)
		return err == nil && r.Status == connector.StatusActive
	})
	m.wait("two clean sync rounds", func() bool {
		s := prod.Poller.Status()
		return s.Rounds >= 2 && s.ConsecutiveFailures == 0
	})
	if s := prod.Poller.Status(); s.LastError != "" {
		t.Errorf("sync poller: %s", s.LastError)
	}

	// Archiver: the events, and the outcomes of the other consumers.
	m.wait("events and outcomes archived", func() bool {
		return hasOutcome(ctx, arch.Store, ok.ID, whDurable, consumers.ResultDelivered) &&
			hasOutcome(ctx, arch.Store, retry.ID, whDurable, consumers.ResultRetried) &&
			hasOutcome(ctx, arch.Store, retry.ID, whDurable, consumers.ResultDelivered) &&
			hasOutcome(ctx, arch.Store, dead.ID, whDurable, consumers.ResultDeadLettered)
	})
	m.wait("auto-accept outcome archived", func() bool {
		page, err := arch.Store.Query(ctx, store.Filter{Type: autoaccept.Namespace, WithOutcomes: true})
		if err != nil {
			return false
		}
		for _, e := range page.Events {
			for _, o := range e.Outcomes {
				if o.Consumer == autoaccept.Name && o.Result == consumers.ResultDelivered {
					return true
				}
			}
		}
		return false
	})

	// Status, as its own user: every consumer process's state is there
	// (each wrote its own into ENMESHED_CONSUMERS, created by the first).
	sjs := jetStream(t, conns[permissions.BinaryStatus])
	m.wait("every process's state in status", func() bool {
		rep, err := admin.Status(ctx, sjs, permSubjects, admin.StatusOptions{Interval: 100 * time.Millisecond})
		m.check("status", err)
		procs := map[string]int{}
		for _, c := range rep.Consumers {
			procs[c.Name] = len(c.Processes)
		}
		return procs[whDurable] == 1 && procs[autoaccept.Name] == 1 && procs[archiver.Name] == 1 &&
			(br == nil || procs[br.cfg.DurableName()] == 1)
	})

	// Max-deliveries advisories (as the server sends them when a handler
	// crashes on an event every time): each consumer reads its own, fetches
	// the event by sequence and dead-letters it.
	advised := []string{whDurable, autoaccept.Name, archiver.Name}
	if br != nil {
		advised = append(advised, br.cfg.DurableName())
	}
	for _, d := range advised {
		before := dlqCount(t, m.admin, d)
		adv, _ := json.Marshal(map[string]any{"stream": streams.Events, "consumer": d, "stream_seq": ok.StreamSeq, "deliveries": 10})
		if _, err := m.admin.Publish(ctx, streams.AdvisorySubject(d), adv); err != nil {
			t.Fatal(err)
		}
		m.wait(d+" dead-letters from its advisory", func() bool { return dlqCount(t, m.admin, d) == before+1 })
	}

	// Pauses on the server: the webhook's receiver answers 410; the
	// Connector rejects auto-accept's API key.
	m.post(ingest, "transport.messageReceived", map[string]any{"id": "MSGpermGONE"})
	double.SetAPIKey("rotated")
	peer := connectortest.NewAddress()
	m.post(ingest, autoaccept.Namespace, map[string]any{"id": "RELPERMISSIONSTEST01", "status": "Pending", "peer": peer,
		"auditLog": []map[string]any{{"createdBy": peer}}})
	for _, d := range []string{whDurable, autoaccept.Name} {
		m.wait(d+" paused", func() bool {
			c, err := m.admin.Consumer(ctx, streams.Events, d)
			return err == nil && c.CachedInfo().Paused
		})
	}

	// The same webhook consumer without the permission to publish its dead
	// letters: the server refuses, the connection hears of it, nothing
	// reaches ENMESHED_DLQ.
	if featureFlags == nil {
		t.Run("missing entry is caught", func(t *testing.T) {
			v := &violations{}
			nc := connectAs(t, url, brokenUser, v)
			bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
			defer bad.Close()
			cfg := load[webhook.ConsumerConfig](t, "WEBHOOK_URL="+bad.URL, "WEBHOOK_DURABLE="+brokenDurable, "WEBHOOK_START=all",
				"WEBHOOK_CONCURRENCY=1", "WEBHOOK_DRAIN_TIMEOUT=1s")
			rt, err := webhook.New(jetStream(t, nc), permSubjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), log)
			if err != nil {
				t.Fatal(err)
			}
			r := app.StartRuntimes(ctx, log, rt)
			natstest.WaitFor(t, 20*time.Second, "a permission violation", func() bool { return len(v.list()) > 0 })
			r.Stop()
			app.Drain(nc, 5*time.Second)
			want := `Publish to "` + strings.TrimSuffix(dlqEntry, ">")
			for _, e := range v.list() {
				if !strings.Contains(e, want) {
					t.Errorf("unexpected violation: %s", e)
				}
			}
			if n := dlqCount(t, m.admin, brokenDurable); n != 0 {
				t.Errorf("%d dead letters of %s stored without the permission", n, brokenDurable)
			}
		})
	}

	rts.Stop()
	select {
	case err := <-rts.Failed():
		t.Errorf("a consumer stopped: %v", err)
	default:
	}
	prod.Shutdown()
	for _, nc := range conns {
		app.Drain(nc, 5*time.Second)
	}
	arch.Close()
	for b, v := range m.viol {
		for _, e := range v.list() {
			t.Errorf("%s: %s", b, e)
		}
	}
}
