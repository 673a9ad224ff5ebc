package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// statusRig is a server with ENMESHED (max age maxAge) and the environment
// that points `eventmesh status` at it.
type statusRig struct {
	ctx     context.Context
	js      jetstream.JetStream
	s       router.Subjects
	environ []string
	// starvedAfter, when set, replaces the status command's starve
	// threshold of a minute.
	starvedAfter time.Duration
}

func newStatusRig(t *testing.T, maxAge time.Duration) *statusRig {
	t.Helper()
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	r := &statusRig{
		ctx:     ctx,
		js:      natstest.JetStream(t, natstest.Connect(t, srv.ClientURL())),
		s:       router.MustSubjects(router.DefaultPrefix),
		environ: []string{"NATS_URL=" + srv.ClientURL()},
	}
	// Created directly: STREAM_MAX_AGE's 1m minimum does not apply here.
	sc := streams.StreamConfig{Replicas: 1, MaxAge: maxAge, MaxBytes: 64 << 20, DuplicateWindow: time.Second}
	if _, err := streams.EnsureStream(ctx, r.js, streams.EventsStream(r.s, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return r
}

// durable creates a plain durable pull consumer on ENMESHED, filtered like
// the runtime's (events and its replays).
func (r *statusRig) durable(t *testing.T, name string, ackWait time.Duration) jetstream.Consumer {
	t.Helper()
	c, err := r.js.CreateOrUpdateConsumer(r.ctx, streams.Events, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
		FilterSubjects: []string{r.s.Event("transport.>"), r.s.Replays(name)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *statusRig) publish(t *testing.T, namespace string, i int) uint64 {
	t.Helper()
	e := router.Event{ID: fmt.Sprintf("%032x", i), Namespace: namespace, Source: router.DefaultSource, Time: time.Now(),
		Origin: router.OriginWebhook, Data: []byte(fmt.Sprintf(`{"id":"MSG%d"}`, i))}
	ack, err := r.js.PublishMsg(r.ctx, e.Msg(r.s))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// status runs `eventmesh status args...` in-process, with the starve
// threshold r.starvedAfter when it is set.
func (r *statusRig) status(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	if r.starvedAfter > 0 {
		var stdout, stderr bytes.Buffer
		code := runStatusWith(r.ctx, admin.StatusOptions{StarvedAfter: r.starvedAfter}, args, r.environ, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	return statusRun(r.ctx, r.environ, args...)
}

func statusRun(ctx context.Context, environ []string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := runStatus(ctx, args, environ, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// statusJSON runs `eventmesh status --json` with a short interval, checks
// that the document carries every documented field, and returns it with
// the exit code.
func (r *statusRig) statusJSON(t *testing.T) (int, admin.StatusReport) {
	t.Helper()
	return r.statusJSONEvery(t, "200ms")
}

// statusJSONEvery runs status --json with the given --interval.
func (r *statusRig) statusJSONEvery(t *testing.T, interval string) (int, admin.StatusReport) {
	t.Helper()
	code, out, errOut := r.status(t, "--json", "--interval", interval)
	var raw struct {
		Stream    map[string]any   `json:"stream"`
		Consumers []map[string]any `json:"consumers"`
		Healthy   *bool            `json:"healthy"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil || raw.Healthy == nil || raw.Stream == nil {
		t.Fatalf("status --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	for _, k := range []string{"name", "messages", "bytes", "max_bytes", "max_age_seconds", "first_time", "last_time"} {
		if _, ok := raw.Stream[k]; !ok {
			t.Errorf("stream lacks %q: %v", k, raw.Stream)
		}
	}
	for _, c := range raw.Consumers {
		for _, k := range []string{"name", "state", "problems", "pending", "ack_pending", "redelivered", "dead_lettered",
			"paused_until", "last_active", "oldest_pending_age_seconds", "oldest_pending_seq", "ack_wait_seconds", "note",
			"delivered_seq", "delivered_moved", "oldest_undelivered_seq", "oldest_undelivered_age_seconds", "starved_after_seconds", "processes"} {
			if _, ok := c[k]; !ok {
				t.Errorf("consumer lacks %q: %v", k, c)
			}
		}
	}
	var rep admin.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Healthy != (code == 0) {
		t.Errorf("healthy %v but exit %d", rep.Healthy, code)
	}
	return code, rep
}

func onlyConsumer(t *testing.T, rep admin.StatusReport, name string) admin.ConsumerStatus {
	t.Helper()
	if len(rep.Consumers) != 1 || rep.Consumers[0].Name != name {
		t.Fatalf("consumers %+v, want only %s", rep.Consumers, name)
	}
	return rep.Consumers[0]
}

func TestStatusHealthyThenPaused(t *testing.T) {
	r := newStatusRig(t, time.Hour)
	// A real consumer runtime that handles everything.
	cfg := consumers.Config{Start: "all", AckWait: 2 * time.Second, MaxDeliver: 3, MaxAckPending: 100, Concurrency: 2,
		Backoff: consumers.Schedule{20 * time.Millisecond}, DrainTimeout: 5 * time.Second}
	rt, err := consumers.New(r.js, r.s, cfg, consumers.Options{Name: "archiver", Filters: []string{r.s.Events()}, DefaultStart: "all",
		Handler: consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { return nil }),
		Metrics: consumers.NewMetrics(prometheus.NewRegistry()),
		Log:     natstest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runtime: %v", err)
		}
	})
	natstest.WaitFor(t, 10*time.Second, "runtime ready", func() bool { return rt.Ready(ctx) == nil })
	for i := range 3 {
		r.publish(t, "transport.messageReceived", i)
	}
	natstest.WaitFor(t, 10*time.Second, "archiver caught up", func() bool {
		c, err := r.js.Consumer(r.ctx, streams.Events, "archiver")
		return err == nil && c.CachedInfo().NumPending == 0 && c.CachedInfo().NumAckPending == 0 && c.CachedInfo().AckFloor.Stream == 3
	})
	// Two dead letters of the archiver's, one of another consumer's: counted
	// per consumer, and no reason for alarm.
	for i, who := range []string{"archiver", "webhook-1", "archiver"} {
		e := router.Event{ID: fmt.Sprintf("%032x", 0xd0+i), Namespace: "transport.messageReceived", Source: router.DefaultSource, Time: time.Now()}
		m := consumers.DeadLetterMsg(r.s, who, e, "receiver answered 400", 3, r.s.Event(e.Namespace), uint64(10+i), time.Now())
		if _, err := r.js.PublishMsg(r.ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	// A second look would wait the whole --interval.
	start := time.Now()
	code, rep := r.statusJSONEvery(t, "60s")
	if code != 0 || !rep.Healthy {
		t.Fatalf("caught up: exit %d, %+v", code, rep)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("status took %s: nothing can be stalled, so no second look is needed", d)
	}
	if rep.Stream.Name != streams.Events || rep.Stream.Messages != 3 || rep.Stream.MaxAge != 3600 || rep.Stream.MaxBytes != 64<<20 ||
		rep.Stream.FirstTime == nil || rep.Stream.LastTime == nil || rep.Stream.LastSeq != 3 {
		t.Errorf("stream %+v", rep.Stream)
	}
	c := onlyConsumer(t, rep, "archiver")
	if c.State != admin.StateOK || len(c.Problems) != 0 || c.Pending != 0 || c.AckPending != 0 || c.DeadLettered != 2 ||
		c.PausedUntil != nil || c.LastActive == nil || c.OldestPendingAge != nil || c.OldestPendingSeq != 0 || c.AckWait != 2 || c.Note != "" {
		t.Errorf("caught-up consumer %+v", c)
	}

	code, out, errOut := r.status(t)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 5 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.HasPrefix(lines[0], "stream ENMESHED: 3 events, ") || !strings.Contains(lines[0], " of 64.0 MiB") || !strings.Contains(lines[0], "max age 1h") {
		t.Errorf("stream line %q", lines[0])
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); got != "CONSUMER STATE PENDING ACK-PENDING REDELIVERED DEAD OLDEST-PENDING LAST-ACTIVE NOTE" {
		t.Errorf("header %q", lines[2])
	}
	if f := strings.Fields(lines[3]); len(f) < 8 || strings.Join(f[:7], " ") != "archiver ok 0 0 0 2 -" || !strings.HasSuffix(lines[3], " ago") {
		t.Errorf("row %q", lines[3])
	}
	if lines[len(lines)-1] != "healthy: 1 of 1 consumers ok" {
		t.Errorf("verdict %q", lines[len(lines)-1])
	}

	// Paused on the server: exit 1 until resumed.
	if err := consumers.PauseConsumer(r.ctx, r.js, "archiver", "test"); err != nil {
		t.Fatal(err)
	}
	code, rep = r.statusJSON(t)
	c = onlyConsumer(t, rep, "archiver")
	if code != 1 || rep.Healthy || c.State != admin.StatePaused || c.PausedUntil == nil || c.PausedUntil.Before(time.Now().AddDate(90, 0, 0)) ||
		!strings.Contains(c.Note, "paused until resumed") {
		t.Errorf("paused: exit %d, consumer %+v", code, c)
	}
	code, out, _ = r.status(t)
	t.Logf("eventmesh status:\n%s", out)
	if code != 1 || !strings.Contains(out, "archiver  paused") || !strings.Contains(out, "eventmesh consumer resume archiver") ||
		!strings.Contains(out, "needs attention: archiver (paused)") {
		t.Errorf("paused table: exit %d\n%s", code, out)
	}
	// A pause with an end shows it.
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := r.js.PauseConsumer(r.ctx, streams.Events, "archiver", until); err != nil {
		t.Fatal(err)
	}
	code, rep = r.statusJSON(t)
	if c := onlyConsumer(t, rep, "archiver"); code != 1 || c.PausedUntil == nil || !c.PausedUntil.Equal(until) ||
		!strings.Contains(c.Note, "paused until "+until.UTC().Format(time.RFC3339)) {
		t.Errorf("paused for an hour: exit %d, %+v", code, c)
	}
	if err := consumers.ResumeConsumer(r.ctx, r.js, "archiver"); err != nil {
		t.Fatal(err)
	}
	if code, rep := r.statusJSON(t); code != 0 || onlyConsumer(t, rep, "archiver").State != admin.StateOK {
		t.Errorf("resumed: exit %d %+v", code, rep)
	}
}

func TestStatusStalled(t *testing.T) {
	t.Parallel()
	r := newStatusRig(t, time.Hour)
	const ackWait = time.Second
	c := r.durable(t, "stuck", ackWait)
	r.publish(t, "transport.messageReceived", 1)
	r.publish(t, "transport.messageReceived", 2)
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // fetched, never acknowledged
	}
	fetched := time.Now()

	// Busy, not stalled: it was active a moment ago.
	code, rep := r.statusJSON(t)
	if s := onlyConsumer(t, rep, "stuck"); code != 0 || s.State != admin.StateOK || s.Pending != 1 || s.AckPending != 1 || s.OldestPendingSeq != 1 {
		t.Fatalf("just fetched: exit %d, %+v", code, s)
	}

	// Nobody fetches or acknowledges for more than 3 ack waits.
	time.Sleep(time.Until(fetched.Add(admin.StallAckWaits*ackWait + 200*time.Millisecond)))
	code, rep = r.statusJSON(t)
	s := onlyConsumer(t, rep, "stuck")
	if code != 1 || rep.Healthy || s.State != admin.StateStalled || s.AckFloorMoved || s.Pending != 1 || s.AckPending != 1 ||
		s.OldestPendingAge == nil || *s.OldestPendingAge < 3 || !strings.Contains(s.Note, "no progress for") ||
		!strings.Contains(s.Note, "no client is fetching") {
		t.Errorf("stalled: exit %d, %+v", code, s)
	}
	code, out, _ := r.status(t, "--interval", "100ms")
	t.Logf("eventmesh status:\n%s", out)
	if code != 1 || !strings.Contains(out, "stuck     stalled") || !strings.Contains(out, "needs attention: stuck (stalled)") {
		t.Errorf("stalled table: exit %d\n%s", code, out)
	}
}

func TestStatusAtRisk(t *testing.T) {
	t.Parallel()
	const maxAge = 6 * time.Second
	r := newStatusRig(t, maxAge)
	c := r.durable(t, "behind", 30*time.Second)
	r.publish(t, "transport.messageReceived", 1)           // seq 1: acknowledged below
	r.publish(t, "consumption.incomingRequestReceived", 2) // seq 2: not for this consumer
	r.publish(t, "transport.messageSent", 3)               // seq 3: its oldest pending event
	st, err := r.js.Stream(r.ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	m3, err := st.GetMsg(r.ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	published := m3.Time // the server's clock is what ages it
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(r.ctx); err != nil {
			t.Fatal(err)
		}
	}

	code, rep := r.statusJSON(t)
	if s := onlyConsumer(t, rep, "behind"); code != 0 || s.State != admin.StateOK || s.OldestPendingSeq != 3 || s.Pending != 1 {
		t.Fatalf("young backlog: exit %d, %+v", code, s)
	}

	// Past half the max age, before the event expires.
	time.Sleep(time.Until(published.Add(maxAge/2 + 300*time.Millisecond)))
	code, rep = r.statusJSON(t)
	s := onlyConsumer(t, rep, "behind")
	if code != 1 || rep.Healthy || s.State != admin.StateAtRisk || s.OldestPendingSeq != 3 || s.OldestPendingAge == nil ||
		*s.OldestPendingAge < maxAge.Seconds()/2 || *s.OldestPendingAge >= maxAge.Seconds() || !strings.Contains(s.Note, "expires in") {
		t.Errorf("at risk: exit %d, %+v", code, s)
	}
	if time.Since(published) >= maxAge {
		t.Fatal("too slow: the event expired meanwhile")
	}
}

func TestStatusCannotTell(t *testing.T) {
	// No server: a closed port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	code, out, errOut := statusRun(ctx, []string{"NATS_URL=nats://" + addr}, "--json")
	if code != 2 || out != "" || !strings.Contains(errOut, "is eventmesh running?") {
		t.Errorf("no server: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}

	// A server without ENMESHED: the message names it and where its
	// address came from.
	srv := natstest.Start(t)
	code, out, errOut = statusRun(context.Background(), []string{"NATS_URL=" + srv.ClientURL()})
	if code != 2 || out != "" || !strings.Contains(errOut, "no stream ENMESHED on "+srv.ClientURL()+" (NATS_URL): is the mesh running there?") {
		t.Errorf("no stream: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, out, errOut = statusRun(context.Background(), []string{"NATS_LISTEN=" + strings.TrimPrefix(srv.ClientURL(), "nats://")}, "--json")
	if code != 2 || out != "" || !strings.Contains(errOut, "no stream ENMESHED on "+srv.ClientURL()+" (NATS_URL unset, using NATS_LISTEN)") {
		t.Errorf("no stream, NATS_LISTEN: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}

	for _, args := range [][]string{{"extra"}, {"--interval", "-1s"}, {"--bogus"}} {
		if code, _, errOut := statusRun(context.Background(), []string{"NATS_URL=" + srv.ClientURL()}, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	if code, out, _ := statusRun(context.Background(), nil, "--help"); code != 0 || !strings.Contains(out, "at_risk") || !strings.Contains(out, "NATS_URL") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func TestStatusNoConsumers(t *testing.T) {
	r := newStatusRig(t, time.Hour)
	code, rep := r.statusJSON(t)
	if code != 0 || !rep.Healthy || rep.Consumers == nil || len(rep.Consumers) != 0 || rep.Stream.FirstTime != nil {
		t.Errorf("no consumers: exit %d %+v", code, rep)
	}
	if code, out, _ := r.status(t); code != 0 || !strings.Contains(out, "no durable consumers on ENMESHED") {
		t.Errorf("no consumers table: exit %d\n%s", code, out)
	}
}

// needsAttention runs status (the table) with --interval and fails the
// test unless it exits 1 and its output has each of want.
func (r *statusRig) needsAttention(t *testing.T, interval string, want ...string) {
	t.Helper()
	code, out, _ := r.status(t, "--interval", interval)
	t.Logf("eventmesh status:\n%s", out)
	for _, w := range want {
		if code != 1 || !strings.Contains(out, w) {
			t.Errorf("status: exit %d, want 1 and %q\n%s", code, w, out)
		}
	}
}

// A process whose circuit breaker is open says so in ENMESHED_CONSUMERS,
// and status shows breaker_open (exit 1) with what to do, though the
// process keeps "last active" fresh with its probes; once the process
// stops gracefully, its state is gone.
func TestStatusBreakerOpen(t *testing.T) {
	t.Parallel()
	r := newStatusRig(t, time.Hour)
	cfg := consumers.Config{Start: "all", AckWait: 2 * time.Second, MaxDeliver: 100, MaxAckPending: 100, Concurrency: 2,
		Backoff: consumers.Schedule{50 * time.Millisecond}, DrainTimeout: 5 * time.Second, BreakerThreshold: 2, BreakerCooldown: 30 * time.Second}
	rt, err := consumers.New(r.js, r.s, cfg, consumers.Options{Name: "failing", Filters: []string{r.s.Events()}, DefaultStart: "all",
		Handler: consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { return errors.New("receiver down") }),
		Metrics: consumers.NewMetrics(prometheus.NewRegistry()), Log: natstest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runtime: %v", err)
		}
	}
	defer func() {
		if ctx.Err() == nil {
			stop()
		}
	}()
	natstest.WaitFor(t, 10*time.Second, "runtime ready", func() bool { return rt.Ready(ctx) == nil })
	for i := range 3 {
		r.publish(t, "transport.messageReceived", i)
	}

	var code int
	var rep admin.StatusReport
	natstest.WaitFor(t, 15*time.Second, "breaker_open", func() bool {
		code, rep = r.statusJSONEvery(t, "100ms")
		return len(rep.Consumers) == 1 && rep.Consumers[0].State == admin.StateBreakerOpen
	})
	c := onlyConsumer(t, rep, "failing")
	if code != 1 || rep.Healthy || len(c.Processes) != 1 || c.Processes[0].Breaker != consumers.BreakerOpen ||
		!strings.Contains(c.Note, "circuit breaker open in 1 of 1 processes") || !strings.Contains(c.Note, "is the receiver down?") {
		t.Errorf("breaker open: exit %d, %+v", code, c)
	}
	r.needsAttention(t, "100ms", "failing   breaker_open", "needs attention: failing (breaker_open")

	// Stopped gracefully: its state is deleted at once.
	stop()
	code, rep = r.statusJSONEvery(t, "100ms")
	if c := onlyConsumer(t, rep, "failing"); len(c.Processes) != 0 || slices.Contains(c.Problems, admin.StateBreakerOpen) {
		t.Errorf("after the process stopped: exit %d, %+v", code, c)
	}
}

// Pending events never delivered, while redeliveries of one failing event
// (as a breaker's probes do) keep "last active" fresh and "stalled" from
// firing: status shows starved (exit 1) and what to do.
func TestStatusStarved(t *testing.T) {
	t.Parallel()
	r := newStatusRig(t, time.Hour)
	r.starvedAfter = time.Second // the threshold is then 2 × the ack wait, 2s
	const ackWait = time.Second
	c, err := r.js.CreateOrUpdateConsumer(r.ctx, streams.Events, jetstream.ConsumerConfig{
		Durable: "starving", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: 1,
		FilterSubjects: []string{r.s.Event("transport.>"), r.s.Replays("starving")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r.publish(t, "transport.messageReceived", i)
	}
	st, err := r.js.Stream(r.ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := st.GetMsg(r.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The first event fails again and again: its one ack-pending slot
	// holds back the others. Two fetch loops, so that a pull is waiting
	// at every look, also while one loop is between its pulls (with one,
	// a loaded machine once showed "no client is fetching").
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	for range 2 {
		go func() {
			for ctx.Err() == nil {
				batch, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					continue
				}
				for m := range batch.Messages() {
					m.NakWithDelay(100 * time.Millisecond)
				}
			}
		}()
	}

	natstest.WaitFor(t, 10*time.Second, "the first event delivered", func() bool {
		info, err := c.Info(r.ctx)
		return err == nil && info.Delivered.Stream == 1
	})
	code, rep := r.statusJSONEvery(t, "300ms")
	if s := onlyConsumer(t, rep, "starving"); code != 0 || s.State != admin.StateOK || s.OldestUndeliveredSeq != 2 || s.StarvedAfter != 2 {
		t.Fatalf("young backlog: exit %d, %+v", code, s)
	}
	time.Sleep(time.Until(m2.Time.Add(2*ackWait + 300*time.Millisecond)))
	code, rep = r.statusJSONEvery(t, "300ms")
	s := onlyConsumer(t, rep, "starving")
	if code != 1 || rep.Healthy || s.State != admin.StateStarved || slices.Contains(s.Problems, admin.StateStalled) || s.DeliveredMoved ||
		s.DeliveredSeq != 1 || s.Pending != 2 || s.OldestUndeliveredSeq != 2 || s.OldestUndeliveredAge == nil || *s.OldestUndeliveredAge <= 2 ||
		!strings.Contains(s.Note, "2 events never delivered") || !strings.Contains(s.Note, "every ack-pending slot (1, …_MAX_ACK_PENDING)") {
		t.Errorf("starved: exit %d, %+v", code, s)
	}
	r.needsAttention(t, "300ms", "starving  starved", "needs attention: starving (starved)")

	// Paused on purpose: paused, not starved.
	if err := consumers.PauseConsumer(r.ctx, r.js, "starving", "test"); err != nil {
		t.Fatal(err)
	}
	if _, rep := r.statusJSONEvery(t, "300ms"); slices.Contains(onlyConsumer(t, rep, "starving").Problems, admin.StateStarved) {
		t.Errorf("paused yet starved: %+v", rep.Consumers[0])
	}
}
