package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// End-to-end: the runtime and the sender against a real nats-server and
// real httptest receivers.

var subjects = router.MustSubjects("enmeshed")

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

// receiver records every request and answers with what answer decides.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []received
	answer func(id string, attempt int) (status int, header http.Header)
	got    chan string
}

type received struct {
	id     string
	at     time.Time
	body   []byte
	header http.Header
}

func newReceiver(t *testing.T, answer func(id string, attempt int) (int, http.Header)) *receiver {
	rc := &receiver{t: t, answer: answer, got: make(chan string, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(webhook.HeaderID)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{id: id, at: time.Now(), body: body, header: r.Header.Clone()})
		attempt := 0
		for _, q := range rc.reqs {
			if q.id == id {
				attempt++
			}
		}
		status, h := http.StatusNoContent, http.Header(nil)
		if rc.answer != nil {
			status, h = rc.answer(id, attempt)
		}
		rc.mu.Unlock()
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		if status < 300 {
			rc.got <- id
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests(id string) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, q := range rc.reqs {
		if q.id == id {
			out = append(out, q)
		}
	}
	return out
}

// wait returns the ids of n successful deliveries.
func (rc *receiver) wait(n int) map[string]int {
	rc.t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		select {
		case id := <-rc.got:
			got[id]++
		case <-time.After(20 * time.Second):
			rc.t.Fatalf("after %d of %d deliveries: timeout", i, n)
		}
	}
	return got
}

type mesh struct {
	t  *testing.T
	js jetstream.JetStream
}

func newMesh(t *testing.T) *mesh {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return &mesh{t: t, js: js}
}

func (m *mesh) publish(ns, data string) router.Event {
	m.t.Helper()
	id, _ := router.EventID(router.DefaultSource, ns, []byte(data))
	e := router.Event{ID: id, Namespace: ns, Source: router.DefaultSource, Time: time.Now(), Origin: router.OriginWebhook, Data: []byte(data)}
	if _, err := m.js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
		m.t.Fatal(err)
	}
	return e
}

// webhookConsumer runs a webhook consumer for url and returns its durable.
func (m *mesh) webhookConsumer(url string, change ...func(*webhook.Config, *consumers.Config)) string {
	m.t.Helper()
	wc := webhook.Config{URL: url, Secret: secretA + " " + secretB, Format: "enmeshed", Triggers: "**",
		APIKeyHeader: "X-API-KEY", Timeout: 5 * time.Second, RateBurst: 1, RetryableStatus: []int{408, 425}}
	rc := consumers.Config{Start: "all", AckWait: 5 * time.Second, MaxDeliver: 5, MaxAckPending: 100, Concurrency: 4,
		Backoff: consumers.Schedule{30 * time.Millisecond}, DrainTimeout: 5 * time.Second}
	for _, c := range change {
		c(&wc, &rc)
	}
	if err := wc.Validate(); err != nil {
		m.t.Fatal(err)
	}
	m.run(webhook.ConsumerConfig{Webhook: wc, Order: "none", Runtime: rc}, consumers.NewMetrics(prometheus.NewRegistry()))
	return wc.DurableName()
}

// run starts the webhook consumer of c, counting into metrics, waits until
// it is ready, and stops it when the test ends.
func (m *mesh) run(c webhook.ConsumerConfig, metrics *consumers.Metrics) {
	m.t.Helper()
	rt, err := webhook.New(m.js, subjects, c, metrics, natstest.Logger(m.t))
	if err != nil {
		m.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	natstest.WaitFor(m.t, 10*time.Second, "consumer ready", func() bool { return rt.Ready(ctx) == nil })
	m.t.Cleanup(func() { cancel(); <-done })
}

func msgData(i int) string {
	return `{"id":"MSG` + strings.Repeat("0", 10) + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + `","isOwn":false,"content":{"@type":"Mail","subject":"s"}}`
}

// N events → N deliveries, each signed with both secrets (checked with the
// receiver-side Verify, whose vectors are fixed by openssl in sign_test.go),
// webhook-id = ce-id, body = the Connector's {"trigger","data"}.
func TestSignedDeliveries(t *testing.T) {
	m := newMesh(t)
	rc := newReceiver(t, nil)
	m.webhookConsumer(rc.srv.URL + "/hook")
	const n = 60
	events := map[string]router.Event{}
	for i := 0; i < n; i++ {
		e := m.publish("transport.messageReceived", msgData(i))
		events[e.ID] = e
	}
	got := rc.wait(n)
	if len(got) != n {
		t.Fatalf("%d distinct deliveries, want %d", len(got), n)
	}
	for id, e := range events {
		reqs := rc.requests(id)
		if len(reqs) != 1 {
			t.Fatalf("%s: %d requests", id, len(reqs))
		}
		q := reqs[0]
		for _, secret := range []string{secretA, secretB} {
			if err := webhook.Verify(secret, q.header, q.body, time.Minute, time.Now()); err != nil {
				t.Errorf("%s: signature with %s...: %v", id, secret[:10], err)
			}
		}
		var body struct {
			Trigger string          `json:"trigger"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(q.body, &body); err != nil || body.Trigger != e.Namespace || string(body.Data) != string(e.Data) {
			t.Errorf("%s: body %s", id, q.body)
		}
	}
}

func TestFailTwiceThenDelivered(t *testing.T) {
	m := newMesh(t)
	rc := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		if attempt <= 2 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	m.webhookConsumer(rc.srv.URL)
	e := m.publish("transport.messageReceived", msgData(1))
	rc.wait(1)
	if reqs := rc.requests(e.ID); len(reqs) != 3 {
		t.Errorf("%d attempts, want 3", len(reqs))
	}
}

// 429 with Retry-After: the next attempt comes no earlier.
func TestRetryAfterRespected(t *testing.T) {
	m := newMesh(t)
	rc := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		if attempt == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	m.webhookConsumer(rc.srv.URL)
	e := m.publish("transport.messageReceived", msgData(2))
	rc.wait(1)
	reqs := rc.requests(e.ID)
	if len(reqs) != 2 {
		t.Fatalf("%d attempts", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
		t.Errorf("second attempt %s after the 429, want ≥ 1s (Retry-After)", gap)
	}
}

// A 400 dead-letters the event for that consumer only; once the receiver is
// fixed, `dlq replay` delivers it to that consumer and no other.
func TestBadRequestDeadLetteredAndReplayed(t *testing.T) {
	m := newMesh(t)
	var mu sync.Mutex
	broken := true
	rcA := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return http.StatusBadRequest, nil
		}
		return http.StatusOK, nil
	})
	rcB := newReceiver(t, nil)
	durableA := m.webhookConsumer(rcA.srv.URL + "/a")
	durableB := m.webhookConsumer(rcB.srv.URL + "/b")
	if durableA == durableB {
		t.Fatal("two endpoints share a durable")
	}
	e := m.publish("transport.messageReceived", msgData(3))
	rcB.wait(1)
	ctx := context.Background()
	var dls []consumers.DeadLetter
	natstest.WaitFor(t, 10*time.Second, "dead letter", func() bool {
		dls, _ = admin.ListDeadLetters(ctx, m.js, subjects, "", time.Time{})
		return len(dls) == 1
	})
	if dls[0].Consumer != durableA || dls[0].Event.ID != e.ID || !strings.Contains(dls[0].Reason, "400") || dls[0].Attempts != 1 {
		t.Errorf("dead letter = %+v", dls[0])
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if n, err := admin.ReplayDeadLetters(ctx, m.js, subjects, dls, time.Now); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if got := rcA.wait(1); got[e.ID] != 1 {
		t.Errorf("replayed delivery: %v", got)
	}
	// Consumer B got the event once, and not the replay. A delivery to B
	// of the replay would have arrived by the time a fresh event has.
	m.publish("transport.messageReceived", msgData(4))
	rcB.wait(1)
	rcA.wait(1)
	if n := len(rcB.requests(e.ID)); n != 1 {
		t.Errorf("consumer B received the event %d times, want 1", n)
	}
	if q := rcA.requests(e.ID); len(q) != 2 || q[1].header.Get(webhook.HeaderID) != e.ID {
		t.Errorf("replay to A: %d requests", len(q))
	}
	if dls, _ := admin.ListDeadLetters(ctx, m.js, subjects, "", time.Time{}); len(dls) != 0 {
		t.Errorf("dead letters after replay: %d", len(dls))
	}
}

// 410 Gone pauses the consumer on the server; `consumer resume` restarts
// delivery and the event arrives.
func TestGonePausesUntilResumed(t *testing.T) {
	m := newMesh(t)
	var mu sync.Mutex
	gone := true
	rc := newReceiver(t, func(id string, attempt int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return http.StatusGone, nil
		}
		return http.StatusOK, nil
	})
	durable := m.webhookConsumer(rc.srv.URL)
	e := m.publish("transport.messageReceived", msgData(5))
	ctx := context.Background()
	natstest.WaitFor(t, 10*time.Second, "paused on the server", func() bool {
		c, err := m.js.Consumer(ctx, streams.Events, durable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.Paused
	})
	mu.Lock()
	gone = false
	mu.Unlock()
	if err := consumers.ResumeConsumer(ctx, m.js, durable); err != nil {
		t.Fatal(err)
	}
	if got := rc.wait(1); got[e.ID] != 1 {
		t.Errorf("after resume: %v", got)
	}
	if dls, _ := admin.ListDeadLetters(ctx, m.js, subjects, "", time.Time{}); len(dls) != 0 {
		t.Errorf("410 must not dead-letter: %d", len(dls))
	}
}

// WEBHOOK_TRIGGERS selects events as the Connector's webhook config does.
func TestTriggersFilter(t *testing.T) {
	m := newMesh(t)
	rc := newReceiver(t, nil)
	m.webhookConsumer(rc.srv.URL, func(wc *webhook.Config, _ *consumers.Config) { wc.Triggers = "transport.messageSent, consumption.*" })
	m.publish("transport.messageReceived", msgData(6))
	want := m.publish("transport.messageSent", msgData(7))
	want2 := m.publish("consumption.attributeCreated", `{"id":"ATT1"}`)
	got := rc.wait(2)
	if got[want.ID] != 1 || got[want2.ID] != 1 {
		t.Errorf("got %v", got)
	}
}
