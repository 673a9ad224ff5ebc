package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// The whole path through the real binary: the Connector's POST to ingest,
// the stream, the webhook consumer (started because WEBHOOK_URL is set),
// a signed POST to the receiver with the Connector's body.
func TestIngestToWebhook(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()
	p := startMesh(t, t.TempDir(), "WEBHOOK_URL="+rc.URL+"/erp/{{trigger}}", "WEBHOOK_SECRET="+testSecret)
	// One trace spans Connector → mesh → receiver: traceparent travels.
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.ingest+"/events", strings.NewReader(sample))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	req.Header.Set("X-Correlation-Id", "corr-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case r := <-got:
		body := <-bodies
		if r.URL.Path != "/erp/transport.messageReceived" {
			t.Errorf("path %s", r.URL.Path)
		}
		if string(body) != `{"trigger":"transport.messageReceived","data":`+sampleData+`}` {
			t.Errorf("body %s", body)
		}
		if err := webhook.Verify(testSecret, r.Header, body, time.Minute, time.Now()); err != nil {
			t.Errorf("signature: %v", err)
		}
		if r.Header.Get("traceparent") != traceparent || r.Header.Get("x-correlation-id") != "corr-7" {
			t.Errorf("trace headers at the receiver: %q %q", r.Header.Get("traceparent"), r.Header.Get("x-correlation-id"))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no delivery\n%s", p.log)
	}
	p.stop(t)
}

func TestWebhookTestCommand(t *testing.T) {
	var seen *http.Request
	var body []byte
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, body = r, nil
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer rc.Close()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"webhook", "test"}, []string{"WEBHOOK_URL=" + rc.URL, "WEBHOOK_SECRET=" + testSecret}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "status:   202") || !strings.Contains(out.String(), `{"ok":true}`) {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	if err := webhook.Verify(testSecret, seen.Header, body, time.Minute, time.Now()); err != nil {
		t.Errorf("the test event is not signed: %v", err)
	}
	rcBad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer rcBad.Close()
	out.Reset()
	if code := run(context.Background(), []string{"webhook", "test"}, []string{"WEBHOOK_URL=" + rcBad.URL}, &out, &errOut); code != 1 ||
		!strings.Contains(out.String(), "dead-lettered") {
		t.Errorf("400: exit %d\n%s", code, out.String())
	}
	if code := run(context.Background(), []string{"webhook", "test"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "WEBHOOK_URL") {
		t.Errorf("no URL: exit %d %s", code, errOut.String())
	}
}

// `eventmesh demo` shows events flowing within seconds: messages,
// relationships (accepted by auto-accept), requests, all signed.
func TestDemo(t *testing.T) {
	var out, errOut natstest.LogBuffer
	wants := []string{"simulated Connector (test double)  http://127.0.0.1:", "operator console                    http://127.0.0.1:", "webhook receiver got transport.messageReceived",
		"transport.relationshipChanged", "status=Active (signature ok)"}
	// The demo runs until it has shown every wanted line (at most the
	// --duration), so a slow start on a loaded machine only takes longer.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			got := out.String()
			if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(got, w) }) {
				time.Sleep(time.Second) // let a few more events through for the order check
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	code := run(ctx, []string{"demo", "--duration", "90s", "--every", "200ms"}, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	got := out.String()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "BAD SIGNATURE") {
		t.Error("a demo webhook failed verification")
	}
	// Per-peer order: no relationship is shown Active before Pending.
	active := map[string]bool{}
	for _, line := range strings.Split(got, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[4] != "transport.relationshipChanged" {
			continue
		}
		switch id, status := f[5], f[6]; status {
		case "status=Active":
			active[id] = true
		case "status=Pending":
			if active[id] {
				t.Errorf("relationship %s shown Pending after Active:\n%s", id, got)
			}
		}
	}
}
