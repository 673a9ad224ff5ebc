package producer_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The benchmarks compare our paths with their ceilings in the same run on
// the same server, and report rates and ratios (machines are noisy;
// ratios within one run are not). Run them with
//
//	go test ./producer -run '^$' -bench . -benchtime 3x
//
// Each iteration measures both sides once; the reported rates are medians.

const inFlight = 64 // publishes in flight, and HTTP clients

// payload1K is a Connector-shaped messageReceived data of about 1 KB whose
// id is n, so every event is distinct.
func payload1K(n int) []byte {
	s := fmt.Sprintf(`{"id":"MSG%017d","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX","recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`, n, strings.Repeat("x", 420))
	return []byte(s)
}

type benchEnv struct {
	srv  *embedded.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	pub  *producer.Publisher
	subs router.Subjects
}

func newBenchEnv(b *testing.B, sync string) *benchEnv {
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = sync; c.MaxStore = 8 << 30 })
	// In-process, as cmd/eventmesh connects to its embedded server.
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	log := natstest.Logger(b)
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		b.Fatal(err)
	}
	s := router.MustSubjects("enmeshed")
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 4 << 30, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(s, sc), log); err != nil {
		b.Fatal(err)
	}
	pub := producer.NewPublisher(js, s, producer.PublisherConfig{Timeout: 5 * time.Second, Attempts: 3}, log)
	return &benchEnv{srv: srv, nc: nc, js: js, pub: pub, subs: s}
}

// parallel runs n calls of f spread over workers goroutines and returns
// calls per second.
func parallel(b *testing.B, n, workers int, f func(i int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

var round atomic.Int64

// BenchmarkPublishPath: the producer's publish path (identity, envelope,
// publish with per-attempt timeout and ack wait) against raw jetstream
// async publishes of the same 1 KB payloads with the same Nats-Msg-Id
// header, the same number in flight, on the same server.
func BenchmarkPublishPath(b *testing.B) {
	for _, sync := range []string{"2m", "always"} {
		b.Run("sync="+sync, func(b *testing.B) {
			e := newBenchEnv(b, sync)
			n := 20000
			if sync == "always" {
				n = 5000
			}
			var raw, ours []float64
			for range b.N {
				r := round.Add(1)
				raw = append(raw, parallel(b, n, inFlight, func(i int) error {
					data := payload1K(int(r)*1_000_000 + i)
					m := nats.NewMsg(e.subs.Event("transport.messageReceived"))
					m.Data = data
					m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("raw-%d-%d", r, i))
					fut, err := e.js.PublishMsgAsync(m)
					if err != nil {
						return err
					}
					select {
					case <-fut.Ok():
						return nil
					case err := <-fut.Err():
						return err
					}
				}))
				r = round.Add(1)
				now := time.Now()
				ours = append(ours, parallel(b, n, inFlight, func(i int) error {
					data := payload1K(int(r)*1_000_000 + i)
					id, err := router.EventID(router.DefaultSource, "transport.messageReceived", data)
					if err != nil {
						return err
					}
					_, err = e.pub.Publish(context.Background(), router.Event{ID: id, Namespace: "transport.messageReceived",
						Source: router.DefaultSource, Time: now, Origin: router.OriginWebhook, Data: data})
					return err
				}))
			}
			b.ReportMetric(median(raw), "raw-msgs/s")
			b.ReportMetric(median(ours), "ours-msgs/s")
			b.ReportMetric(median(ours)/median(raw), "ratio")
		})
	}
}

// BenchmarkIngestHTTP: HTTP ingest with 64 concurrent keep-alive clients,
// each event acknowledged by JetStream before its reply, against (a) a bare
// net/http handler that only drains the body, under the same load, (b) a
// minimal handler that publishes the body raw and answers after the ack
// (what any reply-after-ack handler pays), and (c) raw async publishes of
// the same payloads to the same server with a deep window (the ceiling
// when every write is fsynced).
func BenchmarkIngestHTTP(b *testing.B) {
	for _, sync := range []string{"2m", "always"} {
		b.Run("sync="+sync, func(b *testing.B) {
			e := newBenchEnv(b, sync)
			log := natstest.Logger(b)
			ic := producer.IngestConfig{Addr: "127.0.0.1:0", APIKeyHeader: "X-API-KEY", ConnectorID: router.DefaultSource}
			maxBody, _ := ic.BodyLimit(e.nc.MaxPayload())
			mux := http.NewServeMux()
			producer.NewIngest(e.pub, ic, maxBody, producer.NewMetrics(prometheus.NewRegistry()), log).Register(mux)
			ingest := httptest.NewServer(mux)
			defer ingest.Close()
			bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"status":"ok"}`))
			}))
			defer bare.Close()
			// The least a handler that answers after the ack can do: read
			// the body, publish it raw with a fresh Nats-Msg-Id, wait for
			// the ack. No validation, no identity, no envelope.
			var minimalSeq atomic.Int64
			minimal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				m := nats.NewMsg(e.subs.Event("transport.messageReceived"))
				m.Data = body
				m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("min-%d", minimalSeq.Add(1)))
				fut, err := e.js.PublishMsgAsync(m, jetstream.WithStallWait(5*time.Second))
				if err == nil {
					select {
					case <-fut.Ok():
					case err = <-fut.Err():
					}
				}
				if err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"status":"ok"}`))
			}))
			defer minimal.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight, MaxConnsPerHost: inFlight}}
			n := 30000
			if sync == "always" {
				n = 5000
			}
			load := func(url string, r int64) float64 {
				return parallel(b, n, inFlight, func(i int) error {
					body := `{"trigger":"transport.messageReceived","data":` + string(payload1K(int(r)*1_000_000+i)) + `}`
					resp, err := client.Post(url, "application/json", strings.NewReader(body))
					if err != nil {
						return err
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				})
			}
			var bareRates, minimalRates, ingestRates, rawRates []float64
			for range b.N {
				bareRates = append(bareRates, load(bare.URL+"/events", round.Add(1)))
				minimalRates = append(minimalRates, load(minimal.URL+"/events", round.Add(1)))
				ingestRates = append(ingestRates, load(ingest.URL+"/events", round.Add(1)))
				if sync == "always" {
					r := round.Add(1)
					rawRates = append(rawRates, rawAsync(b, e, n, r))
				}
			}
			b.ReportMetric(median(bareRates), "bare-req/s")
			b.ReportMetric(median(ingestRates), "ingest-req/s")
			b.ReportMetric(median(ingestRates)/median(bareRates), "ratio-bare")
			b.ReportMetric(median(minimalRates), "minimal-req/s")
			b.ReportMetric(median(ingestRates)/median(minimalRates), "ratio-minimal")
			if sync == "always" {
				b.ReportMetric(median(rawRates), "raw-fsync-msgs/s")
				b.ReportMetric(median(ingestRates)/median(rawRates), "ratio-raw")
			}
		})
	}
}

// rawAsync publishes n payloads flat out with a deep async window and
// returns messages per second.
func rawAsync(b *testing.B, e *benchEnv, n int, r int64) float64 {
	start := time.Now()
	futs := make([]jetstream.PubAckFuture, 0, n)
	for i := 0; i < n; i++ {
		m := nats.NewMsg(e.subs.Event("transport.messageReceived"))
		m.Data = payload1K(int(r)*1_000_000 + i)
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("rawa-%d-%d", r, i))
		f, err := e.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}
