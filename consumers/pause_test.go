package consumers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPauseResumeConsumer(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := router.MustSubjects(router.DefaultPrefix)
	events := streams.EventsStream(s, streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute})
	if _, err := streams.EnsureFixedStream(ctx, js, events); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"webhook-1", "archiver"} {
		if _, err := js.CreateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{
			Durable: d, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{s.Events(), s.Replays(d)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	info := func() *jetstream.ConsumerInfo {
		c, err := js.Consumer(ctx, streams.Events, "webhook-1")
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo()
	}
	if err := PauseConsumer(ctx, js, "webhook-1", "receiver answered 410 Gone"); err != nil {
		t.Fatal(err)
	}
	if i := info(); !i.Paused || i.Config.PauseUntil == nil || i.Config.PauseUntil.Before(time.Now().AddDate(99, 0, 0)) {
		t.Errorf("after pause: paused %v until %v", i.Paused, i.Config.PauseUntil)
	}
	ds, err := Durables(ctx, js)
	if err != nil || len(ds) != 2 || ds[0].Name != "archiver" || ds[1].Name != "webhook-1" || !ds[1].Paused || ds[0].Paused {
		t.Errorf("durables: %v", err)
	}
	// A client waiting in Consume gets the event promptly after the resume,
	// not at its next pull.
	c, err := js.Consumer(ctx, streams.Events, "webhook-1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	cc, err := c.Consume(func(m jetstream.Msg) { got <- m.Subject(); m.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	if _, err := js.Publish(ctx, s.Event("transport.messageReceived"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case subj := <-got:
		t.Fatalf("%s delivered while paused", subj)
	case <-time.After(300 * time.Millisecond): // an absence can only be shown by waiting
	}
	start := time.Now()
	if err := ResumeConsumer(ctx, js, "webhook-1"); err != nil {
		t.Fatal(err)
	}
	if i := info(); i.Paused {
		t.Errorf("still paused until %v", i.Config.PauseUntil)
	}
	select {
	case <-got:
		t.Logf("delivered %s after the resume began", time.Since(start).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatal("not delivered within 3s of the resume")
	}
	if err := ResumeConsumer(ctx, js, "webhook-1"); err != nil {
		t.Errorf("resume of a running consumer: %v", err)
	}
	for _, err := range []error{ResumeConsumer(ctx, js, "webhok-1"), PauseConsumer(ctx, js, "webhok-1", "maintenance")} {
		if !errors.Is(err, jetstream.ErrConsumerNotFound) || !strings.Contains(err.Error(), `"webhok-1"`) ||
			!strings.Contains(err.Error(), "archiver, webhook-1") {
			t.Errorf("unknown durable: %v", err)
		}
	}
	if err := PauseConsumer(ctx, js, "a.b", "x"); err == nil {
		t.Error("a durable that is not one token must be refused")
	}
}
