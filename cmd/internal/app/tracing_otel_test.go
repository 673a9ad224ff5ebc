//go:build otel

package app_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// tracingCollector is an OTLP/HTTP receiver: it records every export
// request POSTed to /v1/traces.
type tracingCollector struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func newTracingCollector(t *testing.T) *tracingCollector {
	t.Helper()
	c := &tracingCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			t.Errorf("collector: %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(b, req)
		}
		if err != nil {
			t.Errorf("collector: %s body: %v", r.Header.Get("Content-Type"), err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, req)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(c.Close)
	return c
}

// spans returns the spans received so far by name, and the service.name
// of their resource.
func (c *tracingCollector) spans() (map[string]*tracepb.Span, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	spans, services := map[string]*tracepb.Span{}, map[string]string{}
	for _, req := range c.reqs {
		for _, rs := range req.ResourceSpans {
			var service string
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[s.Name], services[s.Name] = s, service
				}
			}
		}
	}
	return spans, services
}

// With -tags otel and OTEL_EXPORTER_OTLP_ENDPOINT set, ingest and delivery
// export their spans, and the traceparent that travels is the span's: one
// trace Connector → ingest → deliver → receiver.
func TestTracingOTLPExport(t *testing.T) {
	const (
		incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
		trigger  = "transport.messageReceived"
	)
	collector := newTracingCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "tracing-test")
	log := natstest.Logger(t)
	shutdown, err := app.StartTracing(context.Background(), "eventmesh-test", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	// The ingest handler, as producer's tests set it up.
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.ClientURL())
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		t.Fatal(err)
	}
	subjects := router.MustSubjects("enmeshed")
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: 10 * time.Minute}
	st, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), log)
	if err != nil {
		t.Fatal(err)
	}
	ic := producer.IngestConfig{Addr: "127.0.0.1:0", APIKeyHeader: "X-API-KEY", ConnectorID: "enmeshed-connector"}
	maxBody, err := ic.BodyLimit(nc.MaxPayload())
	if err != nil {
		t.Fatal(err)
	}
	pub := producer.NewPublisher(js, subjects, producer.PublisherConfig{Timeout: 2 * time.Second, Attempts: 2}, log)
	mux := http.NewServeMux()
	producer.NewIngest(pub, ic, maxBody, producer.NewMetrics(prometheus.NewRegistry()), log).Register(mux)
	ingest := httptest.NewServer(mux)
	defer ingest.Close()

	req, _ := http.NewRequest(http.MethodPost, ingest.URL+"/events",
		strings.NewReader(`{"trigger":"`+trigger+`","data":{"id":"MSG1"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", incoming)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %d %v", resp.StatusCode, err)
	}
	m, err := st.GetMsg(context.Background(), reply.StreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := router.FromMsg(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !producer.ValidTraceparent(ev.Traceparent) || ev.Traceparent[3:35] != traceID || ev.Traceparent[36:52] == parentID {
		t.Fatalf("event traceparent %q: want trace %s, a new span id", ev.Traceparent, traceID)
	}

	// Delivery: a child span of the event's, whose context the receiver gets.
	var (
		mu       sync.Mutex
		received string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received = r.Header.Get("traceparent")
		mu.Unlock()
	}))
	defer receiver.Close()
	wc, err := app.Load[struct{ Webhook webhook.Config }]([]string{"WEBHOOK_URL=" + receiver.URL})
	if err != nil {
		t.Fatal(err)
	}
	sender, err := webhook.NewSender(wc.Webhook, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.Send(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := received
	mu.Unlock()
	if !producer.ValidTraceparent(out) || out[3:35] != traceID || out[36:52] == ev.Traceparent[36:52] {
		t.Fatalf("receiver's traceparent %q: want trace %s, a span id other than the event's %q", out, traceID, ev.Traceparent)
	}

	// Shutting down flushes the batch to the collector.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	collector.mu.Lock()
	n := len(collector.reqs)
	collector.mu.Unlock()
	if n == 0 {
		t.Fatal("no export request reached the collector")
	}
	spans, services := collector.spans()
	hexID := func(b []byte) string { return hex.EncodeToString(b) }
	for _, c := range []struct {
		name           string
		kind           tracepb.Span_SpanKind
		parent, spanID string
	}{
		{"ingest " + trigger, tracepb.Span_SPAN_KIND_SERVER, parentID, ev.Traceparent[36:52]},
		{"deliver " + trigger, tracepb.Span_SPAN_KIND_CLIENT, ev.Traceparent[36:52], out[36:52]},
	} {
		s := spans[c.name]
		if s == nil {
			t.Errorf("no span %q among %d export requests: %v", c.name, n, tracingSpanNames(spans))
			continue
		}
		if hexID(s.TraceId) != traceID || hexID(s.ParentSpanId) != c.parent || hexID(s.SpanId) != c.spanID || s.Kind != c.kind {
			t.Errorf("span %q: trace %x parent %x id %x kind %v; want %s %s %s %v",
				c.name, s.TraceId, s.ParentSpanId, s.SpanId, s.Kind, traceID, c.parent, c.spanID, c.kind)
		}
		if services[c.name] != "tracing-test" {
			t.Errorf("span %q: service.name %q, want OTEL_SERVICE_NAME's", c.name, services[c.name])
		}
	}
}

func tracingSpanNames(m map[string]*tracepb.Span) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
