package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
)

// demoSecret signs the demo's webhooks (a fixed, public value: demo only).
const demoSecret = "whsec_ZXZlbnRtZXNoLWRlbW8tc2VjcmV0LTAxMjM0NTY3"

// runDemo is `eventmesh demo`: the whole mesh against a simulated
// Connector (the test double) that produces a realistic mix of events,
// with a local webhook receiver that prints what it gets, auto-accept on,
// the sync poller on, and the archive on a temporary SQLite file.
func runDemo(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventmesh demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := app.Duration(fs, "duration", 0, "stop after this long (default: until Ctrl-C)")
	every := app.Duration(fs, "every", 700*time.Millisecond, "how often the simulated Connector produces a change")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	out := &lockedWriter{w: stdout}
	dir, err := os.MkdirTemp("", "eventmesh-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	double, err := connectortest.NewServer("demo-connector-key", app.LogConfig{Format: "text"}.Logger(io.Discard))
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer double.Close()
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Trigger string `json:"trigger"`
			Data    struct {
				ID      string `json:"id"`
				Status  string `json:"status"`
				Request *struct {
					ID string `json:"id"`
				} `json:"request"`
				Content struct {
					Subject string `json:"subject"`
				} `json:"content"`
			} `json:"data"`
		}
		json.Unmarshal(body, &ev)
		sig := "signature ok"
		if webhook.Verify(demoSecret, r.Header, body, 5*time.Minute, time.Now()) != nil {
			sig = "BAD SIGNATURE"
		}
		detail := ev.Data.ID
		if ev.Data.Status != "" {
			detail += " status=" + ev.Data.Status
		}
		if ev.Data.Content.Subject != "" {
			detail += fmt.Sprintf(" subject=%q", ev.Data.Content.Subject)
		}
		fmt.Fprintf(out, "%s  webhook receiver got %-38s %s (%s)\n", time.Now().Format("15:04:05.000"), ev.Trigger, detail, sig)
		w.WriteHeader(http.StatusNoContent)
	})}
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	go receiver.Serve(rln)
	defer receiver.Close()

	natsAddr, ingestAddr, archiveAddr := getenv(environ, "NATS_LISTEN", freePort()), getenv(environ, "INGEST_ADDR", freePort()), freePort()
	consoleAddr := getenv(environ, "CONSOLE_ADDR", freePort())
	env := append(append([]string(nil), environ...),
		"NATS_EMBEDDED=true", "NATS_LISTEN="+natsAddr, "NATS_SYNC=2m", "DATA_DIR="+dir,
		"INGEST_ADDR="+ingestAddr, "ARCHIVE_ADDR="+archiveAddr, "ARCHIVE_DSN=", "CONSOLE_ADDR="+consoleAddr,
		"CONNECTOR_URL="+double.URL(), "CONNECTOR_API_KEY=demo-connector-key", "SYNC_INTERVAL=5s",
		"WEBHOOK_URL=http://"+rln.Addr().String()+"/erp", "WEBHOOK_SECRET="+demoSecret, "WEBHOOK_START=all",
		// Per-peer order, so a relationship's Pending is always shown before its Active.
		"WEBHOOK_ORDER=per-key",
		"AUTOACCEPT_ENABLED=true", "LOG_LEVEL="+getenv(environ, "LOG_LEVEL", "warn"))
	cfg, err := app.Load[config](env)
	if err != nil {
		fmt.Fprintln(stderr, "demo: configuration:", err)
		return 2
	}
	double.SetWebhook("http://"+ingestAddr+"/events/"+router.TriggerPlaceholder, nil)
	fmt.Fprintf(out, `eventmesh demo — a simulated enmeshed Connector producing messages, relationships and requests

  simulated Connector (test double)  %s/api/core/v1   (X-API-KEY: demo-connector-key)
  its webhooks post to ingest         http://%s/events/{{trigger}}
  NATS (embedded, JetStream)          nats://%s      try: nats -s nats://%s sub 'enmeshed.>'
  webhook consumer delivers to        http://%s/erp   (signed, Standard Webhooks)
  auto-accept                         on: incoming relationship requests are accepted
  archive API                         http://%s/events
  operator console                    http://%s/   (open it in a browser)
  data (removed at exit)              %s

`, double.URL(), ingestAddr, natsAddr, natsAddr, rln.Addr(), archiveAddr, consoleAddr, dir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	log := cfg.Log.Logger(stderr)
	go func() {
		// Start producing once ingest answers.
		for ctx.Err() == nil {
			if resp, err := http.Get("http://" + ingestAddr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		double.Simulate(ctx, *every)
	}()
	if err := serve(ctx, cfg, log); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

func getenv(environ []string, key, def string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key && v != "" {
			return v
		}
	}
	return def
}

// freePort returns a free loopback address (the demo needs addresses before
// the servers start, to wire them to each other).
func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
