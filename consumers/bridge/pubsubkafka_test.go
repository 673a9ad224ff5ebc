package bridge_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// Helpers shared by the Pub/Sub and Kafka tests.

// testMessages returns n messages spread over peers keys (the data's
// peer): every fifth has a correlation id and a traceparent, every tenth
// no data (body {}, no key).
func testMessages(n, peers int) []bridge.Message {
	ms := make([]bridge.Message, n)
	for i := range ms {
		e := router.Event{
			ID:        fmt.Sprintf("%032x", i+1),
			Namespace: "transport.messageReceived",
			Source:    "test-connector",
			Time:      time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
			Origin:    router.OriginWebhook,
			Data:      []byte(fmt.Sprintf(`{"n": %d, "s": "<&>", "peer": "peer-%d"}`, i, i%peers)),
		}
		if i%5 == 0 {
			e.CorrelationID = fmt.Sprintf("corr-%d", i)
			e.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		}
		if i%10 == 9 {
			e.Namespace = "consumption.attributeCreated"
			e.Data = nil
		}
		ms[i] = bridge.Message{Event: e, Body: bridge.Body(e)}
	}
	return ms
}

// wantBody is the body the broker must hold for e: its data byte for
// byte, {} without data.
func wantBody(e router.Event) string {
	if e.Data == nil {
		return "{}"
	}
	return string(e.Data)
}

// wantMeta is the metadata (attributes, headers) the broker must hold for
// e in format f; a binding's binary mode names the CloudEvents attributes
// cePrefix+name and the data content type contentType.
func wantMeta(e router.Event, f bridge.Format, cePrefix, contentType string) map[string]string {
	w := map[string]string{}
	if f == bridge.FormatCloudEvents {
		w[contentType] = "application/json"
		w[cePrefix+"specversion"] = "1.0"
		w[cePrefix+"id"] = e.ID
		w[cePrefix+"type"] = e.Namespace
		w[cePrefix+"source"] = e.Source
		w[cePrefix+"time"] = e.Time.Format(time.RFC3339Nano)
		w[cePrefix+"eventmeshorigin"] = string(e.Origin)
		if e.CorrelationID != "" {
			w[cePrefix+"correlationid"] = e.CorrelationID
		}
		if e.Traceparent != "" {
			w[cePrefix+"traceparent"] = e.Traceparent
		}
		return w
	}
	w["namespace"] = e.Namespace
	w["ce-specversion"] = "1.0"
	w["ce-id"] = e.ID
	w["ce-type"] = e.Namespace
	w["ce-source"] = e.Source
	w["ce-time"] = e.Time.Format(time.RFC3339Nano)
	w["eventmesh-origin"] = string(e.Origin)
	if e.CorrelationID != "" {
		w["x-correlation-id"] = e.CorrelationID
	}
	if e.Traceparent != "" {
		w["traceparent"] = e.Traceparent
	}
	return w
}

// diffMeta describes how got differs from want, "" when equal.
func diffMeta(got, want map[string]string) string {
	var d string
	for k, v := range want {
		if got[k] != v {
			d += fmt.Sprintf(" %s=%q (want %q)", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			d += fmt.Sprintf(" extra %s=%q", k, v)
		}
	}
	return d
}

// open opens the publisher of rawURL in format f, closed with the test.
func open(t testing.TB, rawURL string, f bridge.Format, cfg bridge.Config) bridge.Publisher {
	t.Helper()
	u := mustURL(t, rawURL)
	cfg.Format = f
	p, err := bridge.Open(context.Background(), bridge.Options{URL: u, Format: f, Config: cfg, Durable: "bridge-test", Log: natstest.Logger(t)})
	if err != nil {
		t.Fatalf("open %s: %v", u.Redacted(), err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// publishAll publishes ms through pubs: one goroutine per key, each sending
// its key's messages in order (the runtime's per-key order: one unconfirmed
// message per key), the keys spread over the publishers. With retry, a
// failed publish is tried again after 100 ms, as the runtime's schedule
// would, until it succeeds; without, a failure fails the test.
func publishAll(t testing.TB, pubs []bridge.Publisher, ms []bridge.Message, retry bool) {
	t.Helper()
	byKey := map[string][]bridge.Message{}
	var keys []string
	for _, m := range ms {
		if byKey[m.Key()] == nil {
			keys = append(keys, m.Key())
		}
		byKey[m.Key()] = append(byKey[m.Key()], m)
	}
	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	for i, k := range keys {
		p := pubs[i%len(pubs)]
		wg.Go(func() {
			for _, m := range byKey[k] {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := p.Publish(ctx, m)
					cancel()
					if err == nil {
						break
					}
					if !retry || time.Now().After(deadline) {
						t.Errorf("publish %s: %v", m.Event.ID, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// checkOrder checks that the messages of each group (a key, or a key in
// one topic) arrived in the order sent; received holds each group's ids in
// arrival order.
func checkOrder(t testing.TB, ms []bridge.Message, received map[string][]string, group func(bridge.Message) string) {
	t.Helper()
	sent := map[string][]string{}
	for _, m := range ms {
		if m.Key() == "" {
			continue // no order without a key
		}
		sent[group(m)] = append(sent[group(m)], m.Event.ID)
	}
	for g, ids := range sent {
		if fmt.Sprint(received[g]) != fmt.Sprint(ids) {
			t.Errorf("%s: received in order %v, sent %v", g, received[g], ids)
		}
	}
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// startBridge runs the bridge as cmd/bridge wires it (bridge.New) on m
// with the test's fast schedule and vars; it stops with the test.
func startBridge(t *testing.T, m *mesh, vars ...string) (*bridge.Bridge, *natstest.LogBuffer) {
	t.Helper()
	cfg := load(t, slices.Concat(fastVars, vars)...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log, buf := natstest.BufferLogger()
	br, err := bridge.New(m.js, subjects, cfg, consumers.NewMetrics(prometheus.NewRegistry()), log)
	if err != nil {
		t.Fatal(err)
	}
	run(t, br)
	return br, buf
}

// pending returns how many events the bridge's durable has not fetched.
func pending(t *testing.T, m *mesh, durable string) uint64 {
	c, err := m.js.Consumer(context.Background(), streams.Events, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending
}
