package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
)

// runHTTP: the two HTTP ceilings under the load of the ingest figures.
func (b *bencher) runHTTP(ctx context.Context, run int) error {
	bare, err := app.Listen("bench bare handler", "127.0.0.1:0", http.HandlerFunc(bareHandler), b.log)
	if err != nil {
		return err
	}
	defer bare.Shutdown(5 * time.Second)
	hop2, err := app.Listen("bench second hop", "127.0.0.1:0", http.HandlerFunc(noContent), b.log)
	if err != nil {
		return err
	}
	defer hop2.Shutdown(5 * time.Second)
	// The relay's client has the webhook sender's transport settings.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	relayClient := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer relayClient.CloseIdleConnections()
	hop2URL := "http://" + hop2.Addr() + "/hooks"
	relay, err := app.Listen("bench relay", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, hop2URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := relayClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			http.Error(w, resp.Status, http.StatusBadGateway)
			return
		}
		bareHandler(w, r)
	}), b.log)
	if err != nil {
		return err
	}
	defer relay.Shutdown(5 * time.Second)

	base := b.base()
	rate, err := load(ctx, "http://"+bare.Addr()+"/events", b.events(), messages(base))
	if err != nil {
		return fmt.Errorf("bare handler: %w", err)
	}
	b.add("bare_http", rate)
	rate, err = load(ctx, "http://"+relay.Addr()+"/events", b.events(), messages(base))
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	b.add("bare_relay", rate)
	return nil
}

// runIngest: the producer as eventmesh wires it (producing.Start) under
// the load of the bare handler.
func (b *bencher) runIngest(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	prod, err := producing.Start(ctx, b.pcfg, env.nc, app.NewRegistry(), b.log)
	if err != nil {
		return err
	}
	defer prod.Shutdown()
	base := b.base()
	rate, err := load(ctx, "http://"+prod.HTTP.Addr()+"/events", b.events(), messages(base))
	if err != nil {
		return err
	}
	b.add("ingest", rate)
	// The same rate, compared with two more ceilings.
	b.figs["ingest_vs_raw"].Values = append(b.figs["ingest_vs_raw"].Values, rate)
	b.figs["ingest_vs_raw64"].Values = append(b.figs["ingest_vs_raw64"].Values, rate)
	return nil
}

// The load generators. harness.LoadGen is not used: it retries, decodes
// every answer and paces by ticks alone, which suits a chaos run but would
// change what these figures measure; these do the least a client can.

// httpClient is the client of every load: keep-alive connections for
// each of the 64 clients.
func httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
}

// post posts body and returns the answer, which must be a 2xx.
func post(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	reply, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: %s: %.200s", url, resp.Status, reply)
	}
	return reply, err
}

// load posts n bodies from 64 keep-alive clients, each posting its
// next as soon as it has the answer, and returns requests per second.
// Every answer must be a 2xx.
func load(ctx context.Context, url string, n int, body func(i int) []byte) (float64, error) {
	c := httpClient()
	defer c.CloseIdleConnections()
	return flatOut(ctx, n, func(i int) error {
		_, err := post(ctx, c, url, body(i))
		return err
	})
}

// messages returns the webhook bodies of transport.messageReceived events
// with message ids from base on.
func messages(base int64) func(i int) []byte {
	return func(i int) []byte { return harness.Event{Trigger: msgNS, Data: message(base + int64(i))}.Body() }
}

// flatOut does do(i) for every i below n from 64 goroutines, each going
// on to its next i as soon as do returns, and returns the rate per second.
// The first error stops it.
func flatOut(ctx context.Context, n int, do func(i int) error) (float64, error) {
	return inFlight(ctx, n, clients, do)
}

// inFlight calls do for i from 0 to n-1 from workers goroutines, each
// call waiting for the one before it on its goroutine, and returns calls
// per second; the first error stops it.
func inFlight(ctx context.Context, n, workers int, do func(i int) error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), first
}

// steady posts n bodies at rate per second, open loop: a dispatcher
// hands each event to one of 64 workers when it is due (a late tick sends
// every event that is due, so the rate holds on average). reply gets each
// answer and the moment its request was handed to the HTTP client.
func steady(ctx context.Context, url string, n, rate int, body func(i int) []byte, reply func(i int, sent time.Time, b []byte) error) error {
	c := httpClient()
	defer c.CloseIdleConnections()
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range clients {
		wg.Go(func() {
			for i := range jobs {
				b := body(i)
				sent := time.Now()
				r, err := post(ctx, c, url, b)
				if err == nil {
					err = reply(i, sent, r)
				}
				if err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		due := min(n, int(time.Since(start)/interval)+1)
		for ; i < due; i++ {
			jobs <- i
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// bareHandler is the bare ingest handler: it drains the body and
// answers a small JSON document.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}`))
}

// noContent is the bare webhook endpoint: it drains the body and
// answers 204.
func noContent(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
}
