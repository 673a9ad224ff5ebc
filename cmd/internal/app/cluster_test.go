package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
)

// The stream leader of ENMESHED dies in the middle of a steady load on a
// 3-node cluster (STREAM_REPLICAS=3, WEBHOOK_REPLICAS=3). Ingest answers
// 503 while the stream has no leader; the client retries those as a
// Connector operator would. At the end every event that got a 2xx is in the
// stream (read from a survivor) and reached the webhook receiver: an
// acknowledged event is never lost.
func TestClusterLeaderKilled(t *testing.T) {
	const (
		total   = 600
		workers = 4
		pace    = 5 * time.Millisecond // 200 events/s offered
	)
	logs := newLogSink()
	log := slog.New(logs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("warnings and errors of the mesh:\n%s", logs.dump())
		}
	})

	c := natstest.StartCluster(t, 3)
	ctx := context.Background()

	// The receiver: records every webhook-id (= the event's ce-id).
	var (
		recvMu    sync.Mutex
		delivered = map[string]int{}
		firstSeen = map[string]time.Time{}
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		recvMu.Lock()
		id := r.Header.Get(webhook.HeaderID)
		if delivered[id]++; delivered[id] == 1 {
			firstSeen[id] = time.Now()
		}
		recvMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)

	// Producer and webhook consumer as the binaries wire them: each its own
	// connection, given every node, configured from the environment. Both
	// connect to n1 (no shuffling of the list), the node the test will kill.
	connect := func(name string) *nats.Conn {
		nc, err := streams.Connect(ctx, streams.ConnConfig{URL: c.URLs()}, name, log, nats.DontRandomize())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	pcfg, err := app.Load[producing.Config]([]string{
		"STREAM_REPLICAS=3",
		"STREAM_MAX_BYTES=64MiB",
		"STREAM_DUPLICATE_WINDOW=2m",
		"PUBLISH_TIMEOUT=2s",
		"PUBLISH_ATTEMPTS=5",
		"INGEST_ADDR=127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	pnc := connect("test-producer")
	prod, err := producing.Start(ctx, pcfg, pnc, app.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Shutdown)

	wcfg, err := app.Load[webhook.ConsumerConfig]([]string{
		"WEBHOOK_URL=" + rc.URL + "/hook",
		"WEBHOOK_REPLICAS=3",
		"WEBHOOK_START=all",
		// Short enough that an event delivered by the dead consumer leader
		// and never settled comes again within the test.
		"WEBHOOK_ACK_WAIT=5s",
		"WEBHOOK_BACKOFF=200ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := pcfg.Prefix.Subjects()
	if err != nil {
		t.Fatal(err)
	}
	wnc := connect("test-webhook")
	wjs, err := streams.NewJetStream(wnc, log)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := webhook.New(wjs, subjects, wcfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	rts := app.StartRuntimes(ctx, log, rt)
	t.Cleanup(rts.Stop)
	natstest.WaitFor(t, 30*time.Second, "the webhook durable", func() bool { return rts.Ready(ctx) == nil })

	// The worst case, every run: the node that dies leads the stream and
	// the durable and holds both connections, so in-flight publishes and
	// pulls die with it.
	victim := c.Servers[0]
	if pnc.ConnectedServerName() != victim.Name() || wnc.ConnectedServerName() != victim.Name() {
		t.Fatalf("connected to %s and %s, want %s", pnc.ConnectedServerName(), wnc.ConnectedServerName(), victim.Name())
	}
	stepDownTo(t, pnc, "$JS.API.STREAM.LEADER.STEPDOWN."+streams.Events, victim.Name(),
		func() bool { return c.StreamLeader(streams.Events) == victim })
	stepDownTo(t, pnc, "$JS.API.CONSUMER.LEADER.STEPDOWN."+streams.Events+"."+rt.Name(), victim.Name(),
		func() bool { return c.ConsumerLeader(streams.Events, rt.Name()) == victim })

	// The load: a ticker offers one event per tick to a few posting
	// clients; a 503 or a broken connection is retried with the same body
	// (so the same event id) until it gets a 2xx.
	ingest := "http://" + prod.HTTP.Addr() + "/events"
	client := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	t.Cleanup(client.CloseIdleConnections)
	type ack struct {
		id     string
		status string // published or duplicate
		sent   time.Time
		at     time.Time
	}
	var (
		ackMu     sync.Mutex
		acks      []ack
		acked     atomic.Int64
		retries   atomic.Int64 // 503 answers retried
		netErrs   atomic.Int64 // transport errors retried
		otherErrs []string
		gaveUp    []int
	)
	post := func(i int) {
		body := fmt.Sprintf(`{"trigger":"transport.messageReceived","data":{"id":"MSGcluster%04d","isOwn":false,"content":{"@type":"Mail","subject":"Invoice %d"}}}`, i, i)
		deadline := time.Now().Add(60 * time.Second)
		for attempt := 1; ; attempt++ {
			sent := time.Now()
			resp, err := client.Post(ingest, "application/json", strings.NewReader(body))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					var r struct{ ID, Status string }
					if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
						ackMu.Lock()
						otherErrs = append(otherErrs, fmt.Sprintf("event %d: 2xx without an id: %s", i, b))
						ackMu.Unlock()
						return
					}
					ackMu.Lock()
					acks = append(acks, ack{r.ID, r.Status, sent, time.Now()})
					ackMu.Unlock()
					acked.Add(1)
					return
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					ackMu.Lock()
					otherErrs = append(otherErrs, fmt.Sprintf("event %d: %d %s", i, resp.StatusCode, b))
					ackMu.Unlock()
					return
				}
				retries.Add(1)
			} else {
				netErrs.Add(1)
			}
			if time.Now().After(deadline) {
				ackMu.Lock()
				gaveUp = append(gaveUp, i)
				ackMu.Unlock()
				return
			}
			time.Sleep(min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond)) // the client's retry delay
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				post(i)
			}
		}()
	}
	go func() {
		defer close(jobs)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for i := range total {
			<-tick.C
			jobs <- i
		}
	}()

	// Mid-run: kill the stream leader.
	natstest.WaitFor(t, 60*time.Second, "a third of the events acknowledged", func() bool { return acked.Load() >= total/3 })
	leader := c.StreamLeader(streams.Events)
	if leader != victim || c.ConsumerLeader(streams.Events, rt.Name()) != victim {
		t.Fatalf("the leaders moved away from %s before the kill", victim.Name())
	}
	ackedAtKill := acked.Load()
	killAt := time.Now()
	c.Kill(leader)
	killed := time.Since(killAt)
	natstest.WaitFor(t, 30*time.Second, "a new stream leader", func() bool { return c.StreamLeader(streams.Events) != nil })
	elected := time.Since(killAt)
	natstest.WaitFor(t, 30*time.Second, "a new durable leader", func() bool { return c.ConsumerLeader(streams.Events, rt.Name()) != nil })
	consElected := time.Since(killAt)
	natstest.WaitFor(t, 30*time.Second, "the producer's reconnect", func() bool { return pnc.IsConnected() })
	reconnected := time.Since(killAt)
	t.Logf("killed %s (stream and durable leader, both connections) after %d acks; Kill took %s; new stream leader %s after %s, durable leader after %s; producer reconnected to %s after %s",
		leader.Name(), ackedAtKill, killed.Round(time.Millisecond), c.StreamLeader(streams.Events).Name(), elected.Round(time.Millisecond),
		consElected.Round(time.Millisecond), pnc.ConnectedServerName(), reconnected.Round(time.Millisecond))
	wg.Wait()

	// What the client saw.
	ackMu.Lock()
	defer ackMu.Unlock()
	for _, e := range otherErrs {
		t.Error(e)
	}
	if len(gaveUp) > 0 {
		t.Errorf("%d events never got a 2xx within 60s of retries: %v", len(gaveUp), gaveUp)
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].at.Before(acks[j].at) })
	ackedIDs := map[string]bool{}
	dupReplies := 0
	var firstAfter, firstNewAfter time.Duration = -1, -1
	var maxGap, slowest time.Duration
	for i, a := range acks {
		slowest = max(slowest, a.at.Sub(a.sent))
		ackedIDs[a.id] = true
		if a.status == "duplicate" {
			dupReplies++
		}
		if a.at.After(killAt) && firstAfter < 0 {
			firstAfter = a.at.Sub(killAt)
		}
		if a.sent.After(killAt) && firstNewAfter < 0 {
			firstNewAfter = a.at.Sub(killAt)
		}
		if i > 0 && a.at.Sub(acks[i-1].at) > maxGap {
			maxGap = a.at.Sub(acks[i-1].at)
		}
	}
	if len(ackedIDs) != len(acks) {
		t.Errorf("%d 2xx replies carry only %d distinct ids", len(acks), len(ackedIDs))
	}
	t.Logf("failover: first 2xx %s after the kill, first 2xx of a request sent after it %s; longest gap between 2xx %s, slowest request %s",
		firstAfter.Round(time.Millisecond), firstNewAfter.Round(time.Millisecond), maxGap.Round(time.Millisecond), slowest.Round(time.Millisecond))
	t.Logf("client: %d events acknowledged (%d answered duplicate), %d 503s and %d connection errors retried; producer: %d publish attempts retried inside, %d 503s answered",
		len(acks), dupReplies, retries.Load(), netErrs.Load(),
		logs.count("publish attempt failed; retrying with the same id"), logs.count("event not stored; answered 503"))

	// Every acknowledged event is in the stream, read from a survivor.
	survivor := c.Alive()[0]
	js := natstest.JetStream(t, natstest.Connect(t, survivor.ClientURL()))
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	inStream := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		inStream[m.Header.Get(router.HeaderID)]++
	}
	var lost, extra, twice []string
	for id := range ackedIDs {
		if inStream[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range inStream {
		if !ackedIDs[id] {
			extra = append(extra, id)
		}
		if n > 1 {
			twice = append(twice, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged events are not in the stream (read from %s): %v", len(lost), survivor.Name(), lost)
	}
	if len(twice) > 0 {
		t.Errorf("%d events are stored more than once despite their Nats-Msg-Id: %v", len(twice), twice)
	}
	t.Logf("stream on %s: %d messages (replicas %d), %d not acknowledged to the client", survivor.Name(),
		info.State.Msgs, info.Config.Replicas, len(extra))

	// ... and reached the receiver at least once.
	missing := func() []string {
		recvMu.Lock()
		defer recvMu.Unlock()
		var m []string
		for id := range ackedIDs {
			if delivered[id] == 0 {
				m = append(m, id)
			}
		}
		return m
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling, as natstest.WaitFor
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("%d acknowledged events never reached the webhook receiver within 60s: %v", len(m), m)
	}
	recvMu.Lock()
	var lag time.Duration
	var lagID string
	for _, a := range acks {
		if d := firstSeen[a.id].Sub(a.at); d > lag {
			lag, lagID = d, a.id
		}
	}
	t.Logf("delivery: the slowest event reached the receiver %s after its 2xx (which came %s relative to the kill)",
		lag.Round(time.Millisecond), func() time.Duration {
			for _, a := range acks {
				if a.id == lagID {
					return a.at.Sub(killAt).Round(time.Millisecond)
				}
			}
			return 0
		}())
	dups, extraDeliveries := 0, 0
	for _, n := range delivered {
		if n > 1 {
			dups++
			extraDeliveries += n - 1
		}
	}
	t.Logf("receiver: %d distinct events, %d delivered more than once (%d extra deliveries)", len(delivered), dups, extraDeliveries)
	recvMu.Unlock()
}

// stepDownTo asks the leader behind api (a JetStream leader step-down
// endpoint) to hand over to the server named preferred, and waits until
// moved holds.
func stepDownTo(t *testing.T, nc *nats.Conn, api, preferred string, moved func() bool) {
	t.Helper()
	if moved() {
		return
	}
	req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, preferred)
	m, err := nc.Request(api, []byte(req), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", api, err)
	}
	var resp struct {
		Success bool            `json:"success"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil || !resp.Success {
		t.Fatalf("%s: %s", api, m.Data)
	}
	natstest.WaitFor(t, 10*time.Second, "leader on "+preferred+" ("+api+")", moved)
}

// logSink is a slog handler for the mesh under test: it counts messages of
// level Warn and above and keeps the last of them for a failure report.
type logSink struct {
	mu     sync.Mutex
	counts map[string]int
	lines  []string
}

func newLogSink() *logSink { return &logSink{counts: map[string]int{}} }

func (s *logSink) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[msg]
}

func (s *logSink) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func (s *logSink) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler           { return s }
func (s *logSink) WithGroup(string) slog.Handler                { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[r.Message]++
	if s.lines = append(s.lines, b.String()); len(s.lines) > 200 {
		s.lines = s.lines[1:]
	}
	return nil
}
