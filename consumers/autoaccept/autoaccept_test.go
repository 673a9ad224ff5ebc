package autoaccept_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Tests against the Connector test double (a real HTTP server following
// the Connector's OpenAPI spec) and a real nats-server.

var subjects = router.MustSubjects("enmeshed")

const key = "connector-key-for-tests"

type rig struct {
	t      *testing.T
	js     jetstream.JetStream
	double *connectortest.Server
}

func newRig(t *testing.T) *rig {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	d, err := connectortest.NewServer(key, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return &rig{t: t, js: js, double: d}
}

// run starts the auto-accept consumer with c.
func (r *rig) run(c autoaccept.Config) {
	r.t.Helper()
	cc := r.double.ClientConfig()
	cc.Attempts = 1 // retries belong to the runtime here
	cc.APIKey = key // what CONNECTOR_API_KEY says, whatever the double expects now
	rc := consumers.Config{Start: "all", AckWait: 5 * time.Second, MaxDeliver: 20, MaxAckPending: 100, Concurrency: 4,
		Backoff: consumers.Schedule{50 * time.Millisecond}, DrainTimeout: 5 * time.Second}
	rt, err := autoaccept.New(r.js, subjects, autoaccept.ConsumerConfig{AutoAccept: c, Runtime: rc}, cc, nil, prometheus.NewRegistry(), natstest.Logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	natstest.WaitFor(r.t, 10*time.Second, "consumer ready", func() bool { return rt.Ready(ctx) == nil })
	r.t.Cleanup(func() { cancel(); <-done })
}

// publish publishes the relationship as the Connector's webhook would
// (msgID "" = the event's own id).
func (r *rig) publish(rel connector.Relationship, msgID string) {
	r.t.Helper()
	id, _ := router.EventID(router.DefaultSource, autoaccept.Namespace, rel.Raw)
	e := router.Event{ID: id, Namespace: autoaccept.Namespace, Source: router.DefaultSource, Time: time.Now(), Origin: router.OriginWebhook, Data: rel.Raw}
	m := e.Msg(subjects)
	if msgID != "" {
		m.Header.Set(router.HeaderMsgID, msgID)
	}
	if _, err := r.js.PublishMsg(context.Background(), m); err != nil {
		r.t.Fatal(err)
	}
}

// settled waits until the consumer has settled every event.
func (r *rig) settled() {
	r.t.Helper()
	natstest.WaitFor(r.t, 20*time.Second, "all events settled", func() bool {
		c, err := r.js.Consumer(context.Background(), streams.Events, autoaccept.Name)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

func (r *rig) status(id string) string {
	client, _ := connector.New(r.double.ClientConfig(), natstest.Logger(r.t))
	rel, err := client.Relationship(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return rel.Status
}

func (r *rig) deadLetters() int {
	dls, err := admin.ListDeadLetters(context.Background(), r.js, subjects, autoaccept.Name, time.Time{})
	if err != nil {
		r.t.Fatal(err)
	}
	return len(dls)
}

func TestAcceptsIncomingOnceEvenWhenDeliveredTwice(t *testing.T) {
	r := newRig(t)
	rel := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.SyncNow()
	r.publish(rel, "")
	r.publish(rel, "second-copy") // the same event again (webhook and poller, or a replay)
	r.run(autoaccept.Config{})
	r.settled()
	if n := r.double.AcceptCalls(rel.ID); n != 1 {
		t.Errorf("Accept called %d times, want 1", n)
	}
	if s := r.status(rel.ID); s != connector.StatusActive {
		t.Errorf("status %s", s)
	}
}

func TestLostAcceptReply(t *testing.T) {
	r := newRig(t)
	rel := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.SyncNow()
	r.double.DropNextAcceptReply()
	r.publish(rel, "")
	r.run(autoaccept.Config{})
	r.settled()
	if n := r.double.AcceptCalls(rel.ID); n != 1 {
		t.Errorf("Accept called %d times, want 1", n)
	}
	if s := r.status(rel.ID); s != connector.StatusActive || r.deadLetters() != 0 {
		t.Errorf("status %s, %d dead letters", s, r.deadLetters())
	}
}

func TestNoCallForOwnActiveOrNotAllowed(t *testing.T) {
	r := newRig(t)
	own := r.double.AddOutgoingRelationship(connectortest.NewAddress(), "")
	allowedTemplate := "RLTallowed0000000001"
	other := r.double.AddIncomingRelationship(connectortest.NewAddress(), "RLTother00000000000a")
	active := r.double.AddIncomingRelationship(connectortest.NewAddress(), allowedTemplate)
	r.double.SyncNow()
	// Make `active` Active before its (stale, Pending) event is handled.
	client, _ := connector.New(r.double.ClientConfig(), natstest.Logger(t))
	if _, err := client.AcceptRelationship(context.Background(), active.ID); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []connector.Relationship{own, other, active} {
		r.publish(rel, "")
	}
	r.run(autoaccept.Config{Templates: allowedTemplate})
	r.settled()
	if n := r.double.AcceptCalls(own.ID) + r.double.AcceptCalls(other.ID); n != 0 {
		t.Errorf("Accept called %d times for own / not allowed", n)
	}
	if n := r.double.AcceptCalls(active.ID); n != 1 { // ours above, none by the consumer
		t.Errorf("Accept calls for the active one: %d, want only the test's own", n)
	}
	if r.deadLetters() != 0 {
		t.Errorf("%d dead letters", r.deadLetters())
	}
}

func TestPeerAllowListAndDryRun(t *testing.T) {
	r := newRig(t)
	peer := connectortest.NewAddress()
	allowed := r.double.AddIncomingRelationship(peer, "")
	stranger := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.SyncNow()
	r.publish(allowed, "")
	r.publish(stranger, "")
	r.run(autoaccept.Config{Peers: peer, DryRun: true})
	r.settled()
	if r.double.AcceptCalls(allowed.ID)+r.double.AcceptCalls(stranger.ID) != 0 {
		t.Error("dry run accepted")
	}
}

// The peer allow-list on its own: the allowed peer's request is accepted,
// the stranger's is left alone.
func TestPeerAllowList(t *testing.T) {
	r := newRig(t)
	peer := connectortest.NewAddress()
	allowed := r.double.AddIncomingRelationship(peer, "")
	stranger := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.SyncNow()
	r.publish(allowed, "")
	r.publish(stranger, "")
	r.run(autoaccept.Config{Peers: peer})
	r.settled()
	if n := r.double.AcceptCalls(allowed.ID); n != 1 || r.status(allowed.ID) != connector.StatusActive {
		t.Errorf("allowed peer: %d accept calls, status %s", n, r.status(allowed.ID))
	}
	if n := r.double.AcceptCalls(stranger.ID); n != 0 {
		t.Errorf("peer outside the allow-list: %d accept calls", n)
	}
}

func TestConnectorDownThenBack(t *testing.T) {
	r := newRig(t)
	rel := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.SyncNow()
	r.double.SetDown(true)
	r.publish(rel, "")
	r.run(autoaccept.Config{})
	natstest.WaitFor(t, 10*time.Second, "attempts while down", func() bool { return r.double.Calls(connectortest.RouteIdentityInfo) >= 2 })
	r.double.SetDown(false)
	r.settled()
	if s := r.status(rel.ID); s != connector.StatusActive || r.double.AcceptCalls(rel.ID) != 1 {
		t.Errorf("status %s, %d accept calls", s, r.double.AcceptCalls(rel.ID))
	}
}

func TestWrongKeyPausesThenResumeAccepts(t *testing.T) {
	r := newRig(t)
	rel := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.SyncNow()
	r.double.SetAPIKey("rotated-key") // our CONNECTOR_API_KEY is now wrong
	r.publish(rel, "")
	r.run(autoaccept.Config{})
	ctx := context.Background()
	natstest.WaitFor(t, 10*time.Second, "paused on the server", func() bool {
		c, err := r.js.Consumer(ctx, streams.Events, autoaccept.Name)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.Paused
	})
	if r.deadLetters() != 0 {
		t.Errorf("a rejected key dead-lettered %d events", r.deadLetters())
	}
	r.double.SetAPIKey(key) // the key is fixed
	if err := consumers.ResumeConsumer(ctx, r.js, autoaccept.Name); err != nil {
		t.Fatal(err)
	}
	r.settled()
	if s := r.status(rel.ID); s != connector.StatusActive {
		t.Errorf("after resume: %s", s)
	}
}
