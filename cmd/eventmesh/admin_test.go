package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// adminRig is a server with ENMESHED, ENMESHED_DLQ and durables, and the
// environment that points the admin commands at it.
type adminRig struct {
	ctx     context.Context
	js      jetstream.JetStream
	s       router.Subjects
	environ []string
	addr    string // host:port
}

func newAdminRig(t *testing.T, durables ...string) *adminRig {
	t.Helper()
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	r := &adminRig{
		ctx:     ctx,
		js:      natstest.JetStream(t, natstest.Connect(t, srv.ClientURL())),
		s:       router.MustSubjects(router.DefaultPrefix),
		environ: []string{"NATS_URL=" + srv.ClientURL()},
		addr:    strings.TrimPrefix(srv.ClientURL(), "nats://"),
	}
	events := streams.EventsStream(r.s, streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute})
	for _, cfg := range []jetstream.StreamConfig{events, streams.DLQStream(r.s)} {
		if _, err := streams.EnsureFixedStream(ctx, r.js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range durables {
		if _, err := r.js.CreateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{
			Durable: d, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{r.s.Events(), r.s.Replays(d)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// seed writes a dead letter of consumer for a distinct event i and returns
// its DLQ sequence and event.
func (r *adminRig) seed(t *testing.T, consumer string, i int) (uint64, router.Event) {
	t.Helper()
	e := router.Event{
		ID:            fmt.Sprintf("%032x", 0xe0+i),
		Namespace:     "transport.messageReceived",
		Source:        router.DefaultSource,
		Time:          time.Date(2025, 3, 1, 12, 0, i, 0, time.UTC),
		Origin:        router.OriginWebhook,
		Data:          []byte(fmt.Sprintf(`{"id":"MSG%d","content":{"@type":"Mail","subject":"Invoice <%d>"}}`, i, i)),
		CorrelationID: fmt.Sprintf("corr-%d", i),
	}
	m := consumers.DeadLetterMsg(r.s, consumer, e, fmt.Sprintf("receiver answered 400\nBad Request %d", i), 5,
		r.s.Event(e.Namespace), uint64(100+i), time.Date(2025, 3, 2, 8, 0, i, 0, time.UTC))
	ack, err := r.js.PublishMsg(r.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence, e
}

// admin runs an admin command in-process.
func (r *adminRig) admin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return adminRun(r.ctx, r.environ, args...)
}

func adminRun(ctx context.Context, environ []string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := runAdmin(ctx, args, environ, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (r *adminRig) dlqCount(t *testing.T) int {
	t.Helper()
	dls, err := admin.ListDeadLetters(r.ctx, r.js, r.s, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return len(dls)
}

func TestAdminDLQ(t *testing.T) {
	r := newAdminRig(t, "webhook-1", "autoaccept")
	seq1, e1 := r.seed(t, "webhook-1", 1)
	_, e2 := r.seed(t, "autoaccept", 2)
	_, e3 := r.seed(t, "webhook-1", 3)

	code, out, errOut := r.admin(t, "dlq", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("dlq ls: exit %d\n%s%s", code, out, errOut)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "SEQ CONSUMER TYPE CE-ID ATTEMPTS DEAD-AT REASON" {
		t.Errorf("header %q", lines[0])
	}
	want := strings.Fields(fmt.Sprintf("%d webhook-1 transport.messageReceived %s 5 2025-03-02T08:00:01Z receiver answered 400 Bad Request 1", seq1, e1.ID))
	if got := strings.Fields(lines[1]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("row\n got %q\nwant %q", got, want)
	}
	for i, e := range []router.Event{e1, e2, e3} {
		if !strings.Contains(lines[i+1], e.ID) {
			t.Errorf("row %d lacks %s: %q", i+1, e.ID, lines[i+1])
		}
	}

	code, out, errOut = r.admin(t, "dlq", "ls", "--consumer", "webhook-1", "--json")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("dlq ls --json: exit %d\n%s%s", code, out, errOut)
	}
	for i, line := range lines {
		var dl consumers.DeadLetter
		if err := json.Unmarshal([]byte(line), &dl); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		e := []router.Event{e1, e3}[i]
		if dl.Consumer != "webhook-1" || dl.Event.ID != e.ID || string(dl.Event.Data) != string(e.Data) || dl.Attempts != 5 {
			t.Errorf("line %d: %+v", i, dl)
		}
		if !strings.Contains(line, `"subject":"Invoice <`) {
			t.Errorf("HTML-escaped or not inline: %s", line)
		}
	}

	for since, n := range map[string]int{"1h": 3, "7d": 3, time.Now().Add(time.Hour).Format(time.RFC3339): 0} {
		code, out, _ := r.admin(t, "dlq", "ls", "--since", since, "--json")
		if got := strings.Count(out, "\n"); code != 0 || got != n {
			t.Errorf("--since %s: exit %d, %d lines, want %d", since, code, got, n)
		}
	}
	if code, out, _ := r.admin(t, "dlq", "ls", "--consumer", "nobody"); code != 0 ||
		!strings.Contains(out, "no dead letters (consumer nobody) in ENMESHED_DLQ on nats://"+r.addr+" (NATS_URL)") {
		t.Errorf("no dead letters: exit %d %q", code, out)
	}
	for _, args := range [][]string{
		{"dlq", "ls", "--since", "yesterday"},
		{"dlq", "ls", "--consumer", "a.b"},
		{"dlq", "ls", "extra"},
		{"dlq", "ls", "--bogus"},
		{"dlq", "show"},
		{"dlq", "show", "abc"},
		{"dlq", "replay", "--seq", "1", "--since", "1h"},
		{"dlq", "frobnicate"},
		{"dlq"},
	} {
		if code, _, errOut := r.admin(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	if code, out, _ := r.admin(t, "dlq", "--help"); code != 0 || !strings.Contains(out, "dlq replay") || !strings.Contains(out, "NATS_LISTEN") {
		t.Errorf("dlq --help: exit %d\n%s", code, out)
	}

	code, out, errOut = r.admin(t, "dlq", "show", strconv.FormatUint(seq1, 10))
	if code != 0 {
		t.Fatalf("dlq show: exit %d %s", code, errOut)
	}
	for _, want := range []string{
		"consumer:", "webhook-1", "reason:", "receiver answered 400 Bad Request 1", "attempts:", "stream seq:", "101",
		"dead at:", "2025-03-02T08:00:01Z", "event id:", e1.ID, "correlation id:", "corr-1",
		"\nheaders:\n", "  Nats-Msg-Id: dlq:webhook-1:101\n", "  ce-type: transport.messageReceived\n", "  eventmesh-attempts: 5\n",
		"\nbody (", "{\n  \"id\": \"MSG1\",\n  \"content\": {\n    \"@type\": \"Mail\",",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := r.admin(t, "dlq", "show", "999"); code != 1 || !strings.Contains(errOut, "no dead letter with seq 999 in ENMESHED_DLQ on nats://"+r.addr) {
		t.Errorf("dlq show 999: exit %d %q", code, errOut)
	}

	// Replay webhook-1's two: to its replay subject, out of the DLQ.
	code, out, errOut = r.admin(t, "dlq", "replay", "--consumer", "webhook-1")
	if code != 0 || !strings.Contains(out, "replayed 2 of 2 dead letters") ||
		!strings.Contains(out, "2 → enmeshed-replay.webhook-1.transport.messageReceived") {
		t.Fatalf("dlq replay: exit %d\n%s%s", code, out, errOut)
	}
	st, err := r.js.Stream(r.ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []router.Event{e1, e3} {
		m, err := st.GetMsg(r.ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "enmeshed-replay.webhook-1.transport.messageReceived" || m.Header.Get("ce-id") != e.ID ||
			m.Header.Get("eventmesh-origin") != "replay" || !strings.HasPrefix(m.Header.Get("Nats-Msg-Id"), "replay:"+e.ID+":") {
			t.Errorf("replay %d: %s %v", i, m.Subject, m.Header)
		}
	}
	if n := r.dlqCount(t); n != 1 {
		t.Errorf("%d dead letters left, want autoaccept's one", n)
	}
	if code, out, _ := r.admin(t, "dlq", "replay", "--consumer", "webhook-1"); code != 0 || !strings.Contains(out, "nothing to replay") {
		t.Errorf("second replay: exit %d %q", code, out)
	}

	// A consumer without a durable: its replay would reach nobody.
	ghostSeq, _ := r.seed(t, "ghost", 4)
	code, _, errOut = r.admin(t, "dlq", "replay", "--seq", strconv.FormatUint(ghostSeq, 10))
	if code != 1 || !strings.Contains(errOut, "consumer ghost has no durable") {
		t.Errorf("replay to ghost: exit %d %q", code, errOut)
	}
	if code, _, errOut := r.admin(t, "dlq", "replay", "--seq", strconv.FormatUint(ghostSeq, 10), "--consumer", "autoaccept"); code != 1 ||
		!strings.Contains(errOut, "belongs to consumer ghost") {
		t.Errorf("replay --seq of another consumer: exit %d %q", code, errOut)
	}

	// Purge: refused without --yes, then per consumer, then all.
	if code, _, errOut := r.admin(t, "dlq", "purge"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Errorf("purge without --yes: exit %d %q", code, errOut)
	}
	if n := r.dlqCount(t); n != 2 {
		t.Fatalf("purge without --yes removed something: %d left", n)
	}
	if code, out, errOut := r.admin(t, "dlq", "purge", "--consumer", "ghost", "--yes"); code != 0 || !strings.Contains(out, "purged 1 dead letters of consumer ghost") {
		t.Errorf("purge ghost: exit %d %q %q", code, out, errOut)
	}
	if code, out, errOut := r.admin(t, "dlq", "purge", "--yes"); code != 0 || !strings.Contains(out, "purged 1 dead letters of every consumer") {
		t.Errorf("purge all: exit %d %q %q", code, out, errOut)
	}
	if n := r.dlqCount(t); n != 0 {
		t.Errorf("%d dead letters after purge", n)
	}
}

func TestAdminConsumer(t *testing.T) {
	r := newAdminRig(t, "webhook-1", "archiver")
	// NATS_LISTEN is used when NATS_URL is not set.
	r.environ = []string{"NATS_LISTEN=" + r.addr}

	if code, out, errOut := r.admin(t, "consumer", "pause", "webhook-1"); code != 0 || !strings.Contains(out, "paused webhook-1") {
		t.Fatalf("pause: exit %d %q %q", code, out, errOut)
	}
	state := func() map[string]string {
		t.Helper()
		code, out, errOut := r.admin(t, "consumer", "ls")
		if code != 0 {
			t.Fatalf("consumer ls: exit %d %q", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAME STATE PENDING ACK-PENDING REDELIVERED" {
			t.Errorf("header %q", lines[0])
		}
		m := map[string]string{}
		for _, l := range lines[1:] {
			name, rest, _ := strings.Cut(l, " ")
			m[name] = strings.TrimSpace(rest)
		}
		return m
	}
	if s := state(); len(s) != 2 || !strings.HasPrefix(s["webhook-1"], "paused (until resumed)") || !strings.HasPrefix(s["archiver"], "active") {
		t.Errorf("after pause: %q", s)
	}
	if code, out, errOut := r.admin(t, "consumer", "resume", "webhook-1"); code != 0 || !strings.Contains(out, "resumed webhook-1") {
		t.Fatalf("resume: exit %d %q %q", code, out, errOut)
	}
	if s := state(); !strings.HasPrefix(s["webhook-1"], "active") {
		t.Errorf("after resume: %q", s)
	}
	code, _, errOut := r.admin(t, "consumer", "resume", "webhok-1")
	if code != 1 || !strings.Contains(errOut, `no durable "webhok-1"`) || !strings.Contains(errOut, "archiver, webhook-1") ||
		!strings.Contains(errOut, "nats://"+r.addr+" (NATS_URL unset, using NATS_LISTEN)") {
		t.Errorf("resume unknown: exit %d %q", code, errOut)
	}
	for _, args := range [][]string{
		{"consumer", "pause"},
		{"consumer", "resume", "a", "b"},
		{"consumer", "resume", "a.b"},
		{"consumer", "frobnicate"},
		{"consumer"},
	} {
		if code, _, errOut := r.admin(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}

// An admin command on a server that is not the mesh's (the README's
// mesh on another port, a NATS of its own on 4222) says so, naming the
// server and where its address came from, and exits 2: it never answers
// "no dead letters".
func TestAdminWrongServer(t *testing.T) {
	srv := natstest.Start(t)
	addr := strings.TrimPrefix(srv.ClientURL(), "nats://")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	commands := [][]string{{"dlq", "ls"}, {"dlq", "ls", "--json"}, {"dlq", "show", "1"}, {"dlq", "replay"}, {"dlq", "replay", "--seq", "1"},
		{"dlq", "purge", "--yes"}, {"consumer", "ls"}, {"consumer", "pause", "webhook"}, {"consumer", "resume", "webhook"}}
	for _, environ := range [][]string{{"NATS_LISTEN=" + addr}, {"NATS_URL=nats://" + addr, "NATS_LISTEN=127.0.0.1:1"}} {
		source := "(NATS_URL unset, using NATS_LISTEN)"
		if strings.HasPrefix(environ[0], "NATS_URL") {
			source = "(NATS_URL)"
		}
		want := "no stream ENMESHED on nats://" + addr + " " + source + ": is the mesh running there?"
		for _, args := range commands {
			if code, out, errOut := adminRun(ctx, environ, args...); code != 2 || out != "" || !strings.Contains(errOut, want) {
				t.Errorf("%v %v: exit %d\nstdout %q\nstderr %q\nwant exit 2 and %q", environ, args, code, out, errOut, want)
			}
		}
	}

	// ENMESHED without ENMESHED_DLQ: no consumer ever ran there.
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	s := router.MustSubjects(router.DefaultPrefix)
	if _, err := streams.EnsureFixedStream(ctx, js, streams.EventsStream(s, streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute})); err != nil {
		t.Fatal(err)
	}
	environ := []string{"NATS_LISTEN=" + addr}
	want := "no stream ENMESHED_DLQ on nats://" + addr + " (NATS_URL unset, using NATS_LISTEN): is the mesh running there? (a consumer creates it"
	for _, args := range commands[:6] {
		if code, out, errOut := adminRun(ctx, environ, args...); code != 2 || out != "" || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit 2 and %q", args, code, out, errOut, want)
		}
	}
	if code, out, errOut := adminRun(ctx, environ, "consumer", "ls"); code != 0 ||
		!strings.Contains(out, "no durable consumers on ENMESHED at nats://"+addr+" (NATS_URL unset, using NATS_LISTEN)") {
		t.Errorf("consumer ls: exit %d %q %q", code, out, errOut)
	}
}

func TestAdminNoServer(t *testing.T) {
	addr := freeAddr(t) // closed again: nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	code, out, errOut := adminRun(ctx, []string{"NATS_URL=nats://" + addr}, "dlq", "ls")
	if code != 1 || out != "" || !strings.Contains(errOut, "connect to NATS nats://"+addr) || !strings.Contains(errOut, "NATS_URL") {
		t.Errorf("no server: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	if code, _, errOut := adminRun(ctx, []string{"SUBJECT_PREFIX=a.b"}, "consumer", "ls"); code != 2 || !strings.Contains(errOut, "SUBJECT_PREFIX") {
		t.Errorf("bad SUBJECT_PREFIX: exit %d %q", code, errOut)
	}
}
