package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// These tests run the real webhook binary as separate processes against a
// nats-server over TCP: processes sharing a durable, and processes killed
// with work in flight.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "webhook-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "webhook")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build webhook: %v\n%s", err, out)
		os.Exit(1)
	}
	// A test that leaves a listener or a server at its default fails.
	release := harness.HoldDefaultAddrs()
	code := m.Run()
	release()
	os.RemoveAll(dir)
	os.Exit(code)
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 {
		t.Fatal(code)
	}
	doc, _ := os.ReadFile("../../docs/configuration.md")
	for _, v := range app.Vars(&config{}) {
		if !strings.Contains(out.String(), v.Name) {
			t.Errorf("--help lacks %s", v.Name)
		}
		if !strings.Contains(string(doc), "`"+v.Name+"`") {
			t.Errorf("docs/configuration.md does not document %s", v.Name)
		}
	}
	out.Reset()
	if code := run(context.Background(), nil, []string{"WEBHOOK_URL=http://x", "WEBHOOK_MAX_DELIVER=lots"}, &out, &out); code != 2 || !strings.Contains(out.String(), "WEBHOOK_MAX_DELIVER") {
		t.Errorf("bad value: %d %s", code, out.String())
	}
}

// counter is a receiver that verifies signatures and counts deliveries per
// event and per process (X-Process header from WEBHOOK_HEADERS).
type counter struct {
	mu        sync.Mutex
	perEvent  map[string]int
	perProc   map[string]int
	badSig    int
	delay     time.Duration
	srv       *httptest.Server
	onRequest func(id string)
}

func newCounter(t *testing.T, delay time.Duration) *counter {
	c := &counter{perEvent: map[string]int{}, perProc: map[string]int{}, delay: delay}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(c.delay) // the receiver's own work
		c.mu.Lock()
		if webhook.Verify(secret, r.Header, body, time.Minute, time.Now()) != nil {
			c.badSig++
		}
		id := r.Header.Get(webhook.HeaderID)
		c.perEvent[id]++
		c.perProc[r.Header.Get("X-Process")]++
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *counter) distinct() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.perEvent) }

type proc struct {
	cmd  *exec.Cmd
	done chan error
	log  *bytes.Buffer
	http string
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(t *testing.T, natsURL, url, name string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary), done: make(chan error, 1), log: &bytes.Buffer{}, http: freeAddr(t)}
	p.cmd.Env = []string{"NATS_URL=" + natsURL, "WEBHOOK_URL=" + url, "WEBHOOK_SECRET=" + secret, "WEBHOOK_START=all",
		"WEBHOOK_HEADERS=X-Process: " + name, "WEBHOOK_ACK_WAIT=2s", "WEBHOOK_CONCURRENCY=8", "WEBHOOK_BACKOFF=100ms",
		"HTTP_ADDR=" + p.http}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	natstest.WaitFor(t, 30*time.Second, name+" ready", func() bool {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func setup(t *testing.T) (string, jetstream.JetStream) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(router.MustSubjects("enmeshed"), sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
}

func publish(t *testing.T, js jetstream.JetStream, n int) {
	s := router.MustSubjects("enmeshed")
	for i := 0; i < n; i++ {
		data := fmt.Sprintf(`{"id":"MSG%08d","isOwn":false}`, i)
		id, _ := router.EventID(router.DefaultSource, "transport.messageReceived", []byte(data))
		e := router.Event{ID: id, Namespace: "transport.messageReceived", Source: router.DefaultSource, Time: time.Now(), Origin: router.OriginWebhook, Data: []byte(data)}
		if _, err := js.PublishMsgAsync(e.Msg(s)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publish timed out")
	}
}

// Two processes on one durable split N events; one is killed (SIGKILL,
// un-acked work in flight) and restarted: every event is delivered.
func TestTwoProcessesOneKilled(t *testing.T) {
	natsURL, js := setup(t)
	rc := newCounter(t, 2*time.Millisecond)
	const n = 600
	a := start(t, natsURL, rc.srv.URL+"/erp", "a")
	b := start(t, natsURL, rc.srv.URL+"/erp", "b")
	publish(t, js, n)
	natstest.WaitFor(t, 30*time.Second, "a third delivered", func() bool { return rc.distinct() >= n/3 })
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	natstest.WaitFor(t, 30*time.Second, "more delivered by b", func() bool { return rc.distinct() >= n/2 })
	start(t, natsURL, rc.srv.URL+"/erp", "a2")
	natstest.WaitFor(t, 60*time.Second, "every event delivered", func() bool { return rc.distinct() == n })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	dups := 0
	for _, c := range rc.perEvent {
		dups += c - 1
	}
	t.Logf("delivered %d events, %d duplicates (redelivered after the kill), per process %v", len(rc.perEvent), dups, rc.perProc)
	if rc.perProc["a"] == 0 || rc.perProc["b"] == 0 {
		t.Errorf("the two processes did not split the work: %v", rc.perProc)
	}
	if rc.badSig > 0 {
		t.Errorf("%d requests with a bad signature", rc.badSig)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-b.done; err != nil {
		t.Errorf("b on SIGTERM: %v\n%s", err, b.log)
	}
}
