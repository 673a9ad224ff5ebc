package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// dlqServer starts a server with ENMESHED (small limits) and ENMESHED_DLQ.
func dlqServer(t *testing.T) (context.Context, jetstream.JetStream, router.Subjects) {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s := router.MustSubjects(router.DefaultPrefix)
	events := streams.EventsStream(s, streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute})
	for _, cfg := range []jetstream.StreamConfig{events, streams.DLQStream(s)} {
		if _, err := streams.EnsureFixedStream(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, js, s
}

// dlqEvent returns a distinct event; odd i get correlation headers, i%3==2
// has no data.
func dlqEvent(i int, namespace string) router.Event {
	e := router.Event{
		ID:        fmt.Sprintf("%032x", i+1),
		Namespace: namespace,
		Source:    router.DefaultSource,
		Time:      time.Date(2025, 3, 1, 12, 0, i, 123456789, time.UTC),
		Origin:    router.OriginWebhook,
		Data:      []byte(fmt.Sprintf(`{"id":"MSG%d","content":{"@type":"Mail"}}`, i)),
	}
	if i%2 == 1 {
		e.CorrelationID = fmt.Sprintf("corr-%d", i)
		e.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	}
	if i%3 == 2 {
		e.Data = nil
	}
	return e
}

// dlqSeed writes a dead letter of e for consumer and returns what List
// should give back for it.
func dlqSeed(t *testing.T, ctx context.Context, js jetstream.JetStream, s router.Subjects, consumer string, e router.Event, streamSeq uint64) consumers.DeadLetter {
	t.Helper()
	want := consumers.DeadLetter{
		Consumer:  consumer,
		Reason:    "receiver answered 400 Bad Request: " + e.ID,
		Subject:   s.Event(e.Namespace),
		Attempts:  int(streamSeq%5) + 1,
		StreamSeq: streamSeq,
		DeadAt:    time.Date(2025, 3, 2, 8, 30, 0, int(streamSeq), time.UTC),
		Event:     e,
	}
	m := consumers.DeadLetterMsg(s, consumer, e, want.Reason, want.Attempts, want.Subject, streamSeq, want.DeadAt)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("publish dead letter: %v", err)
	}
	want.Seq = ack.Sequence
	return want
}

func dlqSame(t *testing.T, got, want consumers.DeadLetter) {
	t.Helper()
	if got.Seq != want.Seq || got.Consumer != want.Consumer || got.Reason != want.Reason || got.Subject != want.Subject ||
		got.Attempts != want.Attempts || got.StreamSeq != want.StreamSeq || !got.DeadAt.Equal(want.DeadAt) {
		t.Errorf("dead letter\n got %+v\nwant %+v", got, want)
	}
	ge, we := got.Event, want.Event
	if ge.ID != we.ID || ge.Namespace != we.Namespace || ge.Source != we.Source || !ge.Time.Equal(we.Time) ||
		ge.Origin != we.Origin || string(ge.Data) != string(we.Data) || (ge.Data == nil) != (we.Data == nil) ||
		ge.CorrelationID != we.CorrelationID || ge.Traceparent != we.Traceparent {
		t.Errorf("event of seq %d\n got %+v\nwant %+v", want.Seq, ge, we)
	}
}

func TestDLQListRoundTrip(t *testing.T) {
	ctx, js, s := dlqServer(t)
	var want []consumers.DeadLetter
	for i, c := range []string{"webhook-1", "autoaccept", "webhook-1"} {
		ns := []string{"transport.messageReceived", "consumption.incomingRequestReceived"}[i%2]
		want = append(want, dlqSeed(t, ctx, js, s, c, dlqEvent(i, ns), uint64(10+i)))
	}
	// The same dead letter again (a crash, two catchers): not doubled.
	again := consumers.DeadLetterMsg(s, "webhook-1", want[0].Event, want[0].Reason, want[0].Attempts, want[0].Subject, want[0].StreamSeq, want[0].DeadAt)
	if ack, err := js.PublishMsg(ctx, again); err != nil || !ack.Duplicate || ack.Sequence != want[0].Seq {
		t.Fatalf("second copy: %+v %v; want a duplicate of seq %d", ack, err, want[0].Seq)
	}
	since := time.Now()
	want = append(want, dlqSeed(t, ctx, js, s, "autoaccept", dlqEvent(3, "transport.messageSent"), 13))

	all, err := ListDeadLetters(ctx, js, s, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("listed %d, want 4: %+v", len(all), all)
	}
	for i := range want {
		dlqSame(t, all[i], want[i])
		if id := all[i].Header.Get(router.HeaderMsgID); id != router.DLQMsgID(want[i].Consumer, want[i].StreamSeq) {
			t.Errorf("seq %d Nats-Msg-Id %q", all[i].Seq, id)
		}
	}
	for _, tc := range []struct {
		consumer string
		since    time.Time
		want     []int
	}{
		{"webhook-1", time.Time{}, []int{0, 2}},
		{"autoaccept", time.Time{}, []int{1, 3}},
		{"nobody", time.Time{}, nil},
		{"", since, []int{3}},
		{"webhook-1", since, nil},
		{"", time.Now().Add(time.Hour), nil},
	} {
		got, err := ListDeadLetters(ctx, js, s, tc.consumer, tc.since)
		if err != nil {
			t.Fatalf("%q since %v: %v", tc.consumer, tc.since, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q since %v: %d dead letters, want %d", tc.consumer, tc.since, len(got), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			dlqSame(t, got[i], want[w])
		}
	}
	if _, err := ListDeadLetters(ctx, js, s, "a.b", time.Time{}); err == nil {
		t.Error("a consumer that is not one token must be refused")
	}

	one, err := GetDeadLetter(ctx, js, want[1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	dlqSame(t, one, want[1])
	if _, err := GetDeadLetter(ctx, js, 999); !errors.Is(err, jetstream.ErrMsgNotFound) || !strings.Contains(err.Error(), "seq=999") {
		t.Errorf("missing seq: %v", err)
	}

	// --json: the event under snake_case keys, data inline; and back.
	for _, dl := range all {
		b, err := json.Marshal(dl)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{`"seq":`, `"consumer":`, `"stream_seq":`, `"dead_at":`, `"event":{"id":`, `"type":`} {
			if !strings.Contains(string(b), key) {
				t.Errorf("JSON lacks %s: %s", key, b)
			}
		}
		if dl.Event.Data != nil && !strings.Contains(string(b), `"data":{"id":`) {
			t.Errorf("data not inline: %s", b)
		}
		var back consumers.DeadLetter
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		dlqSame(t, back, dl)
	}
}

func TestDLQReplay(t *testing.T) {
	ctx, js, s := dlqServer(t)
	// Durables as the runtime creates them: their events and their replays.
	for _, d := range []string{"webhook-1", "autoaccept"} {
		if _, err := js.CreateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{
			Durable: d, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{s.Events(), s.Replays(d)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	e := dlqEvent(1, "transport.messageReceived")
	wh := dlqSeed(t, ctx, js, s, "webhook-1", e, 7)
	aa := dlqSeed(t, ctx, js, s, "autoaccept", e, 7)

	tick := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { tick = tick.Add(time.Millisecond); return tick }
	dls, err := ListDeadLetters(ctx, js, s, "webhook-1", time.Time{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("list: %v %v", dls, err)
	}
	if n, err := ReplayDeadLetters(ctx, js, s, dls, clock); n != 1 || err != nil {
		t.Fatalf("replay: %d %v", n, err)
	}
	// Replaying the same dead letter again (its entry is gone by now) is a
	// second message: the Nats-Msg-Id is fresh each time.
	if n, err := ReplayDeadLetters(ctx, js, s, []consumers.DeadLetter{wh}, clock); n != 1 || err != nil {
		t.Fatalf("replay again: %d %v", n, err)
	}

	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("ENMESHED holds %d messages, want 2 replays", info.State.Msgs)
	}
	ids := map[string]bool{}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "enmeshed-replay.webhook-1.transport.messageReceived" || string(m.Data) != string(e.Data) {
			t.Errorf("replay %d: %s %s", seq, m.Subject, m.Data)
		}
		h := m.Header
		if h.Get("ce-id") != e.ID || h.Get("eventmesh-origin") != "replay" || h.Get("x-correlation-id") != "corr-1" ||
			h.Get("ce-type") != e.Namespace || h.Get("eventmesh-consumer") != "" {
			t.Errorf("replay %d headers %v", seq, h)
		}
		id := h.Get("Nats-Msg-Id")
		if !strings.HasPrefix(id, "replay:"+e.ID+":") || ids[id] {
			t.Errorf("replay %d Nats-Msg-Id %q (seen: %v)", seq, id, ids)
		}
		ids[id] = true
	}
	// The replay reaches webhook-1 only.
	for d, want := range map[string]uint64{"webhook-1": 2, "autoaccept": 0} {
		c, err := js.Consumer(ctx, streams.Events, d)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.CachedInfo().NumPending; got != want {
			t.Errorf("%s has %d pending, want %d", d, got, want)
		}
	}
	// The replayed entry left the DLQ; autoaccept's is still there.
	left, err := ListDeadLetters(ctx, js, s, "", time.Time{})
	if err != nil || len(left) != 1 {
		t.Fatalf("left: %v %v", left, err)
	}
	dlqSame(t, left[0], aa)

	// A failure stops the replay and says which entry.
	bad := aa
	bad.Seq, bad.Consumer = 99, "no good"
	n, err := ReplayDeadLetters(ctx, js, s, []consumers.DeadLetter{aa, bad, aa}, clock)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "dlq replay seq=99") {
		t.Errorf("replay with a bad entry: %d %v", n, err)
	}
}

func TestDLQPurge(t *testing.T) {
	ctx, js, s := dlqServer(t)
	for i, c := range []string{"webhook-1", "autoaccept", "webhook-1", "webhook-10"} {
		dlqSeed(t, ctx, js, s, c, dlqEvent(i, "transport.messageReceived"), uint64(i+1))
	}
	n, err := PurgeDeadLetters(ctx, js, s, "webhook-1")
	if err != nil || n != 2 {
		t.Fatalf("purge webhook-1: %d %v", n, err)
	}
	left, err := ListDeadLetters(ctx, js, s, "", time.Time{})
	if err != nil || len(left) != 2 || left[0].Consumer != "autoaccept" || left[1].Consumer != "webhook-10" {
		t.Fatalf("left: %+v %v", left, err)
	}
	if n, err = PurgeDeadLetters(ctx, js, s, ""); err != nil || n != 2 {
		t.Fatalf("purge all: %d %v", n, err)
	}
	if n, err = PurgeDeadLetters(ctx, js, s, ""); err != nil || n != 0 {
		t.Fatalf("purge empty: %d %v", n, err)
	}
	if left, err = ListDeadLetters(ctx, js, s, "", time.Time{}); err != nil || len(left) != 0 {
		t.Fatalf("after purge: %+v %v", left, err)
	}
}

func TestSelectDeadLettersAndRequireDurables(t *testing.T) {
	ctx, js, s := dlqServer(t)
	if _, err := js.CreateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{
		Durable: "webhook-1", AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{s.Events(), s.Replays("webhook-1")},
	}); err != nil {
		t.Fatal(err)
	}
	wh := dlqSeed(t, ctx, js, s, "webhook-1", dlqEvent(0, "transport.messageReceived"), 1)
	gh := dlqSeed(t, ctx, js, s, "ghost", dlqEvent(1, "transport.messageReceived"), 2)

	for _, tc := range []struct {
		sel  Selection
		want []consumers.DeadLetter
	}{
		{Selection{}, []consumers.DeadLetter{wh, gh}},
		{Selection{Consumer: "ghost"}, []consumers.DeadLetter{gh}},
		{Selection{Seq: wh.Seq}, []consumers.DeadLetter{wh}},
		{Selection{Seq: gh.Seq, Consumer: "ghost"}, []consumers.DeadLetter{gh}},
	} {
		got, err := SelectDeadLetters(ctx, js, s, tc.sel)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%+v: %d dead letters, %v; want %d", tc.sel, len(got), err, len(tc.want))
			continue
		}
		for i := range got {
			dlqSame(t, got[i], tc.want[i])
		}
	}
	if _, err := SelectDeadLetters(ctx, js, s, Selection{Seq: 999}); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("missing seq: %v", err)
	}
	if _, err := SelectDeadLetters(ctx, js, s, Selection{Seq: gh.Seq, Consumer: "webhook-1"}); err == nil ||
		err.Error() != fmt.Sprintf("dead letter seq %d belongs to consumer ghost, not webhook-1", gh.Seq) {
		t.Errorf("seq of another consumer: %v", err)
	}
	if _, err := SelectDeadLetters(ctx, js, s, Selection{Seq: wh.Seq, Since: time.Now()}); err == nil {
		t.Error("a sequence and a time together must be refused")
	}

	if err := RequireDurables(ctx, js, "webhook-1"); err != nil {
		t.Errorf("webhook-1 has a durable: %v", err)
	}
	var nd *NoDurableError
	err := RequireDurables(ctx, js, "webhook-1", "ghost", "nobody")
	if !errors.As(err, &nd) || nd.Consumer != "ghost" || nd.Index != 1 || !errors.Is(err, jetstream.ErrConsumerNotFound) ||
		!strings.Contains(err.Error(), "consumer ghost has no durable on ENMESHED") {
		t.Errorf("ghost: %v", err)
	}
}
