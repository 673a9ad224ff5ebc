package permissions_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/console"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	dlqLink   = regexp.MustCompile(`href="/dlq/(\d+)"`)
)

// exerciseConsole drives the console on js (the console user's
// connection) through every page and action: overview, an event, the
// dead letters and one of them, pause and resume of durable, a replay of
// the event and of a dead letter, the Live tail, a purge. Each must work
// (a violation fails the test through m).
func exerciseConsole(m *mesh, js jetstream.JetStream, st store.Store, ingest, durable, eventID string) {
	t := m.t
	t.Helper()
	cfg := console.Config{Addr: "127.0.0.1:8088", SessionTTL: time.Hour, MaxTails: 2, ChartWindow: time.Hour, Refresh: time.Second}
	c, err := console.New(cfg, console.Deps{JS: js, Subjects: permSubjects, Store: st, Status: admin.StatusOptions{Interval: 100 * time.Millisecond}})
	m.check("console", err)
	ctx, stop := context.WithCancel(m.ctx)
	defer stop()
	go c.Run(ctx)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, want int) string {
		t.Helper()
		resp, err := cl.Get(srv.URL + path)
		m.check("GET "+path, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d (permission violation: %q)\n%s", path, resp.StatusCode, want, m.violation(), b)
		}
		return string(b)
	}
	home := get("/", http.StatusOK)
	token := csrfField.FindStringSubmatch(home)[1]
	post := func(path string, form url.Values) {
		t.Helper()
		form.Set("csrf", token)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		resp, err := cl.Do(req)
		m.check("POST "+path, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s: %d (permission violation: %q)\n%s", path, resp.StatusCode, m.violation(), b)
		}
	}
	get("/events/"+eventID, http.StatusOK)
	list := get("/dlq", http.StatusOK)
	seq := dlqLink.FindStringSubmatch(list)
	if seq == nil {
		t.Fatalf("no dead letter listed:\n%s", list)
	}
	get("/dlq/"+seq[1], http.StatusOK)
	post("/consumers/"+durable+"/pause", url.Values{})
	m.wait("paused by the console", func() bool {
		ci, err := m.admin.Consumer(m.ctx, "ENMESHED", durable)
		return err == nil && ci.CachedInfo().Paused
	})
	post("/consumers/"+durable+"/resume", url.Values{})
	post("/events/"+eventID+"/replay", url.Values{"consumer": {durable}})
	post("/dlq/replay", url.Values{"seq": {seq[1]}})

	// The Live tail sees an event posted while it is open.
	tctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(tctx, http.MethodGet, srv.URL+"/live/stream?trigger=transport.*", nil)
	resp, err := http.DefaultClient.Do(req)
	m.check("live tail", err)
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || resp.StatusCode != http.StatusOK {
		t.Fatalf("live tail: %d %q (permission violation: %q)", resp.StatusCode, lines.Text(), m.violation())
	}
	posted := m.post(ingest, "transport.messageReceived", map[string]any{"id": "MSGpermLIVE"})
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data: ") && strings.Contains(lines.Text(), posted.ID) {
			break
		}
	}
	if lines.Err() != nil {
		t.Fatalf("live tail: %v (permission violation: %q)", lines.Err(), m.violation())
	}
	post("/dlq/purge", url.Values{"consumer": {durable}, "confirm": {"yes"}})
	if v := m.violation(); v != "" {
		t.Fatalf("console: %s", v)
	}
}
