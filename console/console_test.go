package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// testDurable is the durable consumer the tests pause and replay to.
const testDurable = "webhook-test"

// fixture is a console on a real nats-server (ENMESHED, ENMESHED_DLQ and
// one durable) and a SQLite archive, served by httptest.
type fixture struct {
	c    *Console
	srv  *httptest.Server
	js   jetstream.JetStream
	s    router.Subjects
	st   store.Store
	logs *natstest.LogBuffer
}

func newFixture(t *testing.T, cfg Config, archive bool) *fixture {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s := router.MustSubjects(router.DefaultPrefix)
	events := streams.EventsStream(s, streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute})
	for _, sc := range []jetstream.StreamConfig{events, streams.DLQStream(s)} {
		if _, err := streams.EnsureFixedStream(ctx, js, sc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{Durable: testDurable,
		FilterSubjects: []string{s.Events(), s.Replays(testDurable)}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, s: s}
	if archive {
		st, err := store.OpenSQLite(filepath.Join(t.TempDir(), store.DefaultFile))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		f.st = st
	}
	log, logs := natstest.BufferLogger()
	f.logs = logs
	cfg = testConfig(cfg)
	c, err := New(cfg, Deps{JS: js, Subjects: s, Store: f.st, Log: log, Status: admin.StatusOptions{Interval: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	runCtx, stop := context.WithCancel(context.Background())
	go c.Run(runCtx)
	f.srv = httptest.NewServer(c.Handler())
	t.Cleanup(func() { f.srv.Close(); stop() })
	return f
}

// testConfig fills the defaults of the fields cfg leaves zero.
func testConfig(cfg Config) Config {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8088"
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxTails == 0 {
		cfg.MaxTails = 2
	}
	if cfg.ChartWindow == 0 {
		cfg.ChartWindow = 6 * time.Hour
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = time.Second
	}
	return cfg
}

// client returns an HTTP client that keeps cookies and does not follow
// redirects.
func (f *fixture) client(t *testing.T) *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Jar: newJar(t)}
}

// get returns the status and body of GET path.
func (f *fixture) get(t *testing.T, cl *http.Client, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := cl.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// post sends a form from the console's own origin (origin "" leaves the
// Origin header out).
func (f *fixture) post(t *testing.T, cl *http.Client, path string, form url.Values, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the token from a page.
func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// paused reports whether admin.Status (what `eventmesh status` reads)
// reports the durable paused.
func (f *fixture) paused(t *testing.T) bool {
	t.Helper()
	rep, err := admin.Status(context.Background(), f.js, f.s, admin.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Consumers {
		if c.Name == testDurable {
			return c.PausedUntil != nil
		}
	}
	t.Fatalf("no consumer %s in the status report", testDurable)
	return false
}

func TestConfigRefusesBeyondLoopbackWithoutPassword(t *testing.T) {
	for _, tc := range []struct {
		addr, password string
		ok             bool
	}{
		{"127.0.0.1:8088", "", true},
		{"localhost:8088", "", true},
		{"[::1]:8088", "", true},
		{"0.0.0.0:8088", "", false},
		{":8088", "", false},
		{"10.1.2.3:8088", "", false},
		{"0.0.0.0:8088", "s3cret", true},
	} {
		err := testConfig(Config{Addr: tc.addr, Password: tc.password}).Validate()
		if (err == nil) != tc.ok {
			t.Errorf("CONSOLE_ADDR=%s password %q: %v", tc.addr, tc.password, err)
		}
		if err != nil && !strings.Contains(err.Error(), "CONSOLE_PASSWORD") {
			t.Errorf("the error does not name CONSOLE_PASSWORD: %v", err)
		}
	}
}

// A request whose Host is not allowed gets 403 (DNS rebinding); every
// answer forbids caching.
func TestHostCheckAndNoStore(t *testing.T) {
	f := newFixture(t, Config{}, true)
	cl := f.client(t)
	code, body, h := f.get(t, cl, "/")
	if code != http.StatusOK || !strings.Contains(body, testDurable) {
		t.Fatalf("overview: %d\n%s", code, body)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
	}
	for host, want := range map[string]int{"evil.example:8088": 403, "evil.example": 403, "localhost:8088": 200, "[::1]:1": 200} {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/", nil)
		req.Host = host
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Host %s: Cache-Control %q", host, resp.Header.Get("Cache-Control"))
		}
	}
}

// An action needs the CSRF token and the console's own Origin; then it
// pauses the consumer on the server (as admin.Status sees it) and is
// logged; resume lifts it.
func TestActionNeedsCSRFAndOrigin(t *testing.T) {
	f := newFixture(t, Config{}, true)
	cl := f.client(t)
	_, body, _ := f.get(t, cl, "/")
	token := csrf(t, body)
	path := "/consumers/" + testDurable + "/pause"
	if code, _ := f.post(t, cl, path, url.Values{}, f.srv.URL); code != http.StatusForbidden {
		t.Errorf("no token: %d, want 403", code)
	}
	if code, _ := f.post(t, cl, path, url.Values{"csrf": {"x" + token}}, f.srv.URL); code != http.StatusForbidden {
		t.Errorf("wrong token: %d, want 403", code)
	}
	if code, _ := f.post(t, cl, path, url.Values{"csrf": {token}}, "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("foreign Origin: %d, want 403", code)
	}
	if code, _ := f.post(t, cl, path, url.Values{"csrf": {token}}, ""); code != http.StatusForbidden {
		t.Errorf("no Origin: %d, want 403", code)
	}
	if f.paused(t) {
		t.Fatal("a refused action paused the consumer")
	}
	if code, body := f.post(t, cl, path, url.Values{"csrf": {token}}, f.srv.URL); code != http.StatusSeeOther {
		t.Fatalf("pause: %d\n%s", code, body)
	}
	if !f.paused(t) {
		t.Fatal("not paused after the console's pause")
	}
	if !strings.Contains(f.logs.String(), "action=pause consumer="+testDurable) {
		t.Errorf("the action is not logged:\n%s", f.logs)
	}
	_, body, _ = f.get(t, cl, "/")
	if !strings.Contains(body, `id="resume-`+testDurable+`"`) {
		t.Errorf("the overview offers no resume:\n%s", body)
	}
	if code, _ := f.post(t, cl, "/consumers/"+testDurable+"/resume", url.Values{"csrf": {token}}, f.srv.URL); code != http.StatusSeeOther {
		t.Fatalf("resume: %d", code)
	}
	if f.paused(t) {
		t.Fatal("still paused after resume")
	}
}

// Read-only: no action is offered, and a POST with a valid token is
// refused.
func TestReadOnly(t *testing.T) {
	f := newFixture(t, Config{ReadOnly: true}, true)
	cl := f.client(t)
	_, body, _ := f.get(t, cl, "/")
	if strings.Contains(body, "/pause") || strings.Contains(body, ">Pause<") {
		t.Errorf("a read-only overview offers pause:\n%s", body)
	}
	token := base64Token(f.c, "")
	code, msg := f.post(t, cl, "/consumers/"+testDurable+"/pause", url.Values{"csrf": {token}}, f.srv.URL)
	if code != http.StatusForbidden || !strings.Contains(msg, "CONSOLE_READONLY") {
		t.Errorf("pause in read-only mode: %d %s", code, msg)
	}
	if f.paused(t) {
		t.Error("paused in read-only mode")
	}
}

// base64Token is the CSRF token of a session value.
func base64Token(c *Console, sess string) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if sess != "" {
		r.AddCookie(&http.Cookie{Name: cookieName, Value: sess})
	}
	return c.sec.csrfToken(r)
}

// With a password every page needs a login; failed logins are
// rate-limited; the signed cookie is HttpOnly and SameSite=Strict, and a
// second console with the same password (a replica, a restart) accepts
// it; an expired one is refused.
func TestLoginSessionAndRateLimit(t *testing.T) {
	f := newFixture(t, Config{Password: "correct horse"}, true)
	cl := f.client(t)
	code, _, h := f.get(t, cl, "/events")
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Fatalf("not logged in: %d %s", code, h.Get("Location"))
	}
	_, body, _ := f.get(t, cl, "/login")
	token := csrf(t, body)
	if code, _ := f.post(t, cl, "/login", url.Values{"csrf": {token}, "password": {"wrong"}}, f.srv.URL); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/login", strings.NewReader(url.Values{"csrf": {token}, "password": {"correct horse"}, "next": {"/dlq"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dlq" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	if code, _, _ := f.get(t, cl, "/events"); code != http.StatusOK {
		t.Errorf("logged in: %d", code)
	}
	// A replica with the same password accepts the cookie.
	replica, err := New(testConfig(Config{Password: "correct horse"}), Deps{JS: f.js, Subjects: f.s})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/login", nil)
	r.AddCookie(cookie)
	if !replica.sec.loggedIn(r) {
		t.Error("a replica with the same password refuses the cookie")
	}
	other, _ := New(testConfig(Config{Password: "another"}), Deps{JS: f.js, Subjects: f.s})
	if other.sec.loggedIn(r) {
		t.Error("a console with another password accepts the cookie")
	}
	later, _ := New(testConfig(Config{Password: "correct horse"}), Deps{JS: f.js, Subjects: f.s, Now: func() time.Time { return time.Now().Add(13 * time.Hour) }})
	if later.sec.loggedIn(r) {
		t.Error("an expired session is accepted")
	}
	// Failed logins from one address: after the burst, 429 even for the
	// right password.
	fresh := f.client(t)
	limited := false
	for i := 0; i < loginBurst+2; i++ {
		code, _ := f.post(t, fresh, "/login", url.Values{"csrf": {token}, "password": {"guess"}}, f.srv.URL)
		if code == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("failed logins are not rate-limited")
	}
	if code, _ := f.post(t, fresh, "/login", url.Values{"csrf": {token}, "password": {"correct horse"}}, f.srv.URL); code != http.StatusTooManyRequests {
		t.Errorf("right password while limited: %d, want 429", code)
	}
}

// The search finds an event by id with each consumer's latest outcome; its
// page shows headers, data and the timeline; nothing of the payload is
// logged, even by a replay.
func TestEventSearchPageAndNoPayloadInLogs(t *testing.T) {
	f := newFixture(t, Config{}, true)
	ctx := context.Background()
	const secret = "Personal-Data-7731"
	at := time.Now().UTC().Add(-time.Minute)
	e := store.Event{ID: "0123456789abcdef0123456789abcdef", Subject: "enmeshed.transport.messageReceived", Type: "transport.messageReceived",
		Source: "enmeshed-connector", Time: at, StreamSeq: 1, Origin: "webhook",
		Headers: map[string][]string{"ce-id": {"0123456789abcdef0123456789abcdef"}}, Data: []byte(`{"id":"MSG1","content":"` + secret + `"}`)}
	if err := f.st.InsertEvents(ctx, []store.Event{e}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.InsertOutcomes(ctx, []store.Outcome{
		{Consumer: testDurable, EventID: e.ID, Result: store.ResultRetried, Attempt: 1, Error: "503 from receiver", Time: at.Add(time.Second)},
		{Consumer: testDurable, EventID: e.ID, Result: store.ResultDelivered, Attempt: 2, Time: at.Add(3 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	cl := f.client(t)
	code, body, _ := f.get(t, cl, "/events?id="+e.ID)
	if code != 200 || !strings.Contains(body, `href="/events/`+e.ID+`"`) || !strings.Contains(body, "delivered") {
		t.Fatalf("search: %d\n%s", code, body)
	}
	code, body, h := f.get(t, cl, "/events/"+e.ID)
	if code != 200 || !strings.Contains(body, secret) || !strings.Contains(body, "503 from receiver") || !strings.Contains(body, `data-result="delivered"`) {
		t.Fatalf("event page: %d\n%s", code, body)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("an event page may be cached: %q", h.Get("Cache-Control"))
	}
	if code, body := f.post(t, cl, "/events/"+e.ID+"/replay", url.Values{"csrf": {csrf(t, body)}, "consumer": {testDurable}}, f.srv.URL); code != http.StatusSeeOther {
		t.Fatalf("replay: %d\n%s", code, body)
	}
	if !strings.Contains(f.logs.String(), "action=\"replay event\"") {
		t.Errorf("the replay is not logged:\n%s", f.logs)
	}
	if strings.Contains(f.logs.String(), secret) {
		t.Errorf("the payload was logged:\n%s", f.logs)
	}
	if code, _, _ := f.get(t, cl, "/events?type=bad..type"); code != http.StatusBadRequest {
		t.Errorf("bad type pattern: %d", code)
	}
	if code, _, _ := f.get(t, cl, "/events/ffffffffffffffffffffffffffffffff"); code != http.StatusNotFound {
		t.Errorf("unknown event: %d", code)
	}
}

// Without the archive the event pages say it is off; the overview works.
func TestArchiveOff(t *testing.T) {
	f := newFixture(t, Config{}, false)
	cl := f.client(t)
	if code, body, _ := f.get(t, cl, "/events"); code != 200 || !strings.Contains(body, "ARCHIVE_ENABLED=false") {
		t.Errorf("events: %d\n%s", code, body)
	}
	if code, body, _ := f.get(t, cl, "/"); code != 200 || !strings.Contains(body, testDurable) {
		t.Errorf("overview: %d\n%s", code, body)
	}
}

// The Live tail streams new events matching the trigger pattern (not
// others, never data), and no more than CONSOLE_MAX_TAILS at once.
func TestLiveTail(t *testing.T) {
	f := newFixture(t, Config{MaxTails: 1}, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/live/stream?trigger=transport.messageReceived", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || lines.Text() != ": tail open" {
		t.Fatalf("first line %q", lines.Text())
	}
	second, _ := http.Get(f.srv.URL + "/live/stream")
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a tail beyond CONSOLE_MAX_TAILS: %d", second.StatusCode)
	}
	second.Body.Close()
	for i, ns := range []string{"transport.messageSent", "transport.messageReceived"} {
		ev := router.Event{ID: strings.Repeat("a", 31) + string(rune('0'+i)), Namespace: ns, Source: "enmeshed-connector", Time: time.Now(),
			Origin: router.OriginWebhook, Data: []byte(`{"secret":"payload"}`)}
		if _, err := f.js.PublishMsg(ctx, ev.Msg(f.s)); err != nil {
			t.Fatal(err)
		}
	}
	for lines.Scan() {
		line := lines.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var got liveEvent
		if err := json.Unmarshal([]byte(data), &got); err != nil {
			t.Fatal(err)
		}
		if got.Type != "transport.messageReceived" || got.ID != strings.Repeat("a", 31)+"1" {
			t.Errorf("tail sent %+v, which the pattern excludes", got)
		}
		if strings.Contains(data, "payload") {
			t.Errorf("the tail sent data: %s", data)
		}
		break
	}
	cancel()
	natstest.WaitFor(t, 10*time.Second, "the tail's slot freed", func() bool { return f.c.tailsOpen() == 0 })
}
