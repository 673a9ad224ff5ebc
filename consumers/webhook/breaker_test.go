package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

// The circuit breaker end to end: the webhook consumer with its defaults
// (parsed from the environment as the binary does), a real receiver, a
// real nats-server.

// hangingReceiver never answers the events in hang (until the request
// ends), answers status to the others, and notes when each event first
// got a 2xx and how many requests arrived.
type hangingReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	hang     map[string]bool
	status   atomic.Int64
	requests atomic.Int64
	got      map[string]time.Time
}

func newHangingReceiver(t *testing.T) *hangingReceiver {
	rc := &hangingReceiver{hang: map[string]bool{}, got: map[string]time.Time{}}
	rc.status.Store(http.StatusNoContent)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.requests.Add(1)
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get(webhook.HeaderID)
		rc.mu.Lock()
		hang := rc.hang[id]
		rc.mu.Unlock()
		if hang {
			<-r.Context().Done() // the sender's timeout ends it
			return
		}
		status := int(rc.status.Load())
		w.WriteHeader(status)
		if status < 300 {
			rc.mu.Lock()
			if _, ok := rc.got[id]; !ok {
				rc.got[id] = time.Now()
			}
			rc.mu.Unlock()
		}
	}))
	t.Cleanup(func() { rc.srv.CloseClientConnections(); rc.srv.Close() })
	return rc
}

func (rc *hangingReceiver) hangOn(id string) {
	rc.mu.Lock()
	rc.hang[id] = true
	rc.mu.Unlock()
}

// delivered returns when id got a 2xx, if it did.
func (rc *hangingReceiver) delivered(id string) (time.Time, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	at, ok := rc.got[id]
	return at, ok
}

// defaultWebhook runs a webhook consumer for url configured as the binary
// configures it from vars (WEBHOOK_URL is set here; anything else not in
// vars keeps its default) and returns its durable name.
func (m *mesh) defaultWebhook(url string, vars map[string]string) string {
	return m.defaultWebhookWith(url, vars, consumers.NewMetrics(prometheus.NewRegistry()))
}

// defaultWebhookWith is defaultWebhook counting into metrics.
func (m *mesh) defaultWebhookWith(url string, vars map[string]string, metrics *consumers.Metrics) string {
	m.t.Helper()
	all := map[string]string{"WEBHOOK_URL": url}
	for k, v := range vars {
		all[k] = v
	}
	c, err := env.ParseAsWithOptions[webhook.ConsumerConfig](env.Options{Environment: all})
	if err != nil {
		m.t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		m.t.Fatal(err)
	}
	m.run(c, metrics)
	return c.Webhook.DurableName()
}

// The starvation of issue 12: with the defaults and WEBHOOK_TIMEOUT=3s, six
// events the receiver never answers, then twelve healthy events one a
// second: all twelve arrive within 20 s of the last one. (The attempt-based
// breaker opened on the six, and its probes took their retries: the healthy
// events waited ten minutes.)
func TestFewHangingEventsDoNotStarveTheRest(t *testing.T) {
	m := newMesh(t)
	rc := newHangingReceiver(t)
	m.defaultWebhook(rc.srv.URL, map[string]string{"WEBHOOK_TIMEOUT": "3s"})
	for i := range 6 {
		id := m.publishID(fmt.Sprintf(`{"hang":%d}`, i))
		rc.hangOn(id)
	}
	var healthy []string
	for i := range 12 {
		time.Sleep(time.Second)
		healthy = append(healthy, m.publishID(fmt.Sprintf(`{"healthy":%d}`, i)))
	}
	last := time.Now()
	waitDelivered(t, rc, healthy, last.Add(20*time.Second))
}

// waitDelivered fails t unless every one of ids is delivered by deadline.
func waitDelivered(t *testing.T, rc *hangingReceiver, ids []string, deadline time.Time) {
	t.Helper()
	for time.Now().Before(deadline) {
		missing := 0
		for _, id := range ids {
			if _, ok := rc.delivered(id); !ok {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	missing := 0
	for _, id := range ids {
		if _, ok := rc.delivered(id); !ok {
			missing++
		}
	}
	t.Fatalf("%d of %d events not delivered by the deadline", missing, len(ids))
}

// After `consumer resume` (ResumeConsumer) of a paused durable, delivery
// restarts within 2 s, also while events that hang are retried.
func TestDeliveryRestartsSoonAfterResume(t *testing.T) {
	m := newMesh(t)
	rc := newHangingReceiver(t)
	durable := m.defaultWebhook(rc.srv.URL, map[string]string{"WEBHOOK_TIMEOUT": "3s"})
	for i := range 6 {
		rc.hangOn(m.publishID(fmt.Sprintf(`{"hang":%d}`, i)))
	}
	first := m.publishID(`{"healthy":"before"}`)
	waitDelivered(t, rc, []string{first}, time.Now().Add(10*time.Second))
	time.Sleep(4 * time.Second) // the six have failed once
	ctx := context.Background()
	if err := consumers.PauseConsumer(ctx, m.js, durable, "test"); err != nil {
		t.Fatal(err)
	}
	var during []string
	for i := range 3 {
		during = append(during, m.publishID(fmt.Sprintf(`{"healthy":"paused-%d"}`, i)))
	}
	time.Sleep(7 * time.Second) // past a pull request's expiry, and the first retries are due
	for _, id := range during {
		if _, ok := rc.delivered(id); ok {
			t.Fatal("delivered while paused")
		}
	}
	resumed := time.Now()
	if err := consumers.ResumeConsumer(ctx, m.js, durable); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, rc, during, resumed.Add(2*time.Second))
	var latest time.Time
	for _, id := range during {
		if at, _ := rc.delivered(id); at.After(latest) {
			latest = at
		}
	}
	t.Logf("delivered %s after the resume", latest.Sub(resumed).Round(time.Millisecond))
}

// publishID publishes a transport.messageReceived event with data and
// returns its id.
func (m *mesh) publishID(data string) string {
	return m.publish("transport.messageReceived", data).ID
}

// A receiver that is down still opens the breaker, and while it is open the
// attempts fall to the probes, one per cool-down; once the receiver is
// back a probe closes it. Defaults, except a cool-down of 1 s instead of
// 30 s, so that a few probes fit into seconds.
func TestDownReceiverOpensTheBreaker(t *testing.T) {
	m := newMesh(t)
	rc := newHangingReceiver(t)
	rc.status.Store(http.StatusServiceUnavailable)
	reg := prometheus.NewRegistry()
	m.defaultWebhookWith(rc.srv.URL, map[string]string{"WEBHOOK_BREAKER_COOLDOWN": "1s"}, consumers.NewMetrics(reg))
	for i := range 60 {
		m.publishID(fmt.Sprintf(`{"down":%d}`, i))
	}
	natstest.WaitFor(t, 10*time.Second, "the breaker open", func() bool { return breakerOpen(t, reg) })
	// The in-flight attempts when it opened may still arrive; then only
	// probes do. Without the breaker the first retries (5 s later) of the
	// 60 would all arrive in the span measured.
	time.Sleep(500 * time.Millisecond)
	before := rc.requests.Load()
	const span = 8 * time.Second
	time.Sleep(span)
	attempts := rc.requests.Load() - before
	t.Logf("%d attempts when it opened, %d in the %s after", before, attempts, span)
	if before < 20 {
		t.Errorf("opened after %d attempts, want at least 20 distinct events (BREAKER_MIN_EVENTS)", before)
	}
	if max := int64(span/time.Second) + 2; attempts > max {
		t.Errorf("%d attempts in %s with the breaker open, want at most %d (one probe per 1s cool-down)", attempts, span, max)
	}
	if !breakerOpen(t, reg) {
		t.Error("the breaker closed while the receiver is down")
	}
	rc.status.Store(http.StatusNoContent)
	// Events handed back while the breaker is open wait out the cool-down or
	// their retry delay, whichever is longer, and each hand-back counts as a
	// delivery: after a few probes every event's next delivery may be the
	// schedule's 30 s away, so the next probe can wait that long for one.
	natstest.WaitFor(t, 45*time.Second, "a probe closes the breaker", func() bool { return !breakerOpen(t, reg) })
	id := m.publishID(`{"down":"back"}`)
	waitDelivered(t, rc, []string{id}, time.Now().Add(5*time.Second))
}

// breakerOpen reads the breaker gauge.
func breakerOpen(t *testing.T, reg *prometheus.Registry) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "eventmesh_consumer_breaker_open" {
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() == 1 {
					return true
				}
			}
		}
	}
	return false
}

// A probe takes an event that has not failed when there is one: with the
// breaker open over events that keep failing and whose retries are due,
// healthy events published since go through at the first probe (a probe
// taking the first due retry failed, and the breaker stayed open).
// Defaults, except a cool-down of 1 s and BREAKER_MIN_EVENTS=10, so that it
// opens on a dozen events, and WEBHOOK_BACKOFF=100ms,1m, so that their
// first retries are due at the probe, and WEBHOOK_TIMEOUT=3s.
func TestProbeTakesAnEventThatHasNotFailed(t *testing.T) {
	m := newMesh(t)
	rc := newHangingReceiver(t)
	reg := prometheus.NewRegistry()
	m.defaultWebhookWith(rc.srv.URL, map[string]string{"WEBHOOK_BREAKER_COOLDOWN": "1s", "WEBHOOK_BREAKER_MIN_EVENTS": "10",
		"WEBHOOK_BACKOFF": "100ms,1m", "WEBHOOK_TIMEOUT": "3s"}, consumers.NewMetrics(reg))
	for i := range 12 {
		rc.hangOn(m.publishID(fmt.Sprintf(`{"failing":%d}`, i)))
	}
	natstest.WaitFor(t, 10*time.Second, "the breaker open", func() bool { return breakerOpen(t, reg) })
	var healthy []string
	for i := range 5 {
		healthy = append(healthy, m.publishID(fmt.Sprintf(`{"healthy":%d}`, i)))
	}
	// The first probe comes within the 1 s cool-down; one that took a
	// failing event would hang for the 3 s timeout and wait another
	// cool-down.
	waitDelivered(t, rc, healthy, time.Now().Add(3*time.Second))
}
