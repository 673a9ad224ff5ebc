package producer_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/prometheus/client_golang/prometheus"
)

type syncRig struct {
	*env
	double *connectortest.Server
	pub    *producer.Publisher
	ingest *httptest.Server
}

func newSyncRig(t *testing.T) *syncRig {
	e := setup(t)
	d, err := connectortest.NewServer("k", natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	pub := producer.NewPublisher(e.js, router.MustSubjects("enmeshed"), producer.PublisherConfig{Timeout: time.Second, Attempts: 2}, natstest.Logger(t))
	return &syncRig{env: e, double: d, pub: pub}
}

// runPoller runs a poller until it completed rounds rounds, then stops it.
func (r *syncRig) runPoller(t *testing.T, rounds int, backfill bool) *producer.Poller {
	t.Helper()
	client, err := connector.New(r.double.ClientConfig(), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := producer.NewPoller(client, r.pub, r.js, router.DefaultSource, producer.SyncConfig{Interval: 50 * time.Millisecond, Backfill: backfill},
		prometheus.NewRegistry(), natstest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	for i := 0; i < rounds; i++ {
		select {
		case <-p.Rounds():
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d did not finish", i+1)
		}
	}
	cancel()
	<-done
	return p
}

// byType counts the stream's messages by ce-type and returns the origins
// of each ce-id.
func (r *syncRig) byType(t *testing.T) (map[string]int, map[string][]string) {
	ctx := context.Background()
	st, err := r.js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	types, ids := map[string]int{}, map[string][]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		types[m.Header.Get(router.HeaderType)]++
		id := m.Header.Get(router.HeaderID)
		ids[id] = append(ids[id], m.Header.Get(router.HeaderOrigin))
	}
	return types, ids
}

func TestPollerFirstRunRecordsWithoutHistory(t *testing.T) {
	r := newSyncRig(t)
	r.double.AddIncomingMessage(connectortest.NewAddress(), "old news", time.Time{})
	r.runPoller(t, 1, false)
	if types, _ := r.byType(t); len(types) != 0 {
		t.Errorf("the first run published history: %v", types)
	}
}

func TestPollerBackfill(t *testing.T) {
	r := newSyncRig(t)
	r.double.AddIncomingMessage(connectortest.NewAddress(), "old news", time.Time{})
	r.runPoller(t, 1, true)
	if types, _ := r.byType(t); types["transport.messageReceived"] != 1 {
		t.Errorf("backfill published %v", types)
	}
}

// Events created while the producer was down are published when it
// starts, each once, also when the same events arrive by webhook; a
// message with an old createdAt, received late, is published; a restart
// resumes from the bucket without re-publishing.
func TestPollerCatchesUpAndDeduplicatesWithWebhooks(t *testing.T) {
	r := newSyncRig(t)
	r.runPoller(t, 1, false) // the bucket knows the (empty) Connector

	// Phase A: the producer is down; the Connector's webhooks are lost.
	peer := connectortest.NewAddress()
	late := r.double.AddIncomingMessage(peer, "sent a year ago, received now", time.Now().AddDate(-1, 0, 0))
	rel := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.AddIncomingRequest(peer)
	r.double.SyncNow() // the Connector learns of them; its webhooks go nowhere
	r.runPoller(t, 2, false)
	types, ids := r.byType(t)
	// AddIncomingRequest arrives in a message of its own: two messages.
	if types["transport.messageReceived"] != 2 || types["transport.relationshipChanged"] != 1 || types["consumption.incomingRequestReceived"] != 1 {
		t.Fatalf("after catching up: %v", types)
	}
	lateID, _ := router.EventID(router.DefaultSource, "transport.messageReceived", late.Raw)
	if o := ids[lateID]; len(o) != 1 || o[0] != "sync" {
		t.Errorf("the late message: %v", o)
	}

	// Phase B: webhooks work again; the poller sees the same events.
	mux := http.NewServeMux()
	producer.NewIngest(r.pub, producer.IngestConfig{APIKeyHeader: "X-API-KEY", ConnectorID: router.DefaultSource}, 1<<20, nil, natstest.Logger(t)).Register(mux)
	r.ingest = httptest.NewServer(mux)
	defer r.ingest.Close()
	r.double.SetWebhook(r.ingest.URL+"/events/{{trigger}}", nil)
	client, _ := connector.New(r.double.ClientConfig(), natstest.Logger(t))
	if _, err := client.AcceptRelationship(context.Background(), rel.ID); err != nil { // fires relationshipChanged by webhook
		t.Fatal(err)
	}
	m2 := r.double.AddIncomingMessage(connectortest.NewAddress(), "both paths", time.Time{})
	r.runPoller(t, 2, false) // its Sync fires the webhooks too
	r.double.FlushWebhooks()
	types, ids = r.byType(t)
	if types["transport.messageReceived"] != 3 || types["transport.relationshipChanged"] != 2 {
		t.Errorf("after both paths: %v", types)
	}
	for id, origins := range ids {
		if len(origins) != 1 {
			t.Errorf("event %s stored %d times (%v)", id, len(origins), origins)
		}
	}
	m2ID, _ := router.EventID(router.DefaultSource, "transport.messageReceived", m2.Raw)
	if len(ids[m2ID]) != 1 {
		t.Errorf("message by both paths: %v", ids[m2ID])
	}

	// A restart resumes from the bucket: nothing new, nothing republished.
	before, _ := r.byType(t)
	r.runPoller(t, 2, false)
	after, _ := r.byType(t)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("restart republished %s: %d → %d", k, before[k], v)
		}
	}
}

// The Connector down: rounds fail, status says so, nothing crashes, and
// the changes are published once it is back.
func TestPollerConnectorDown(t *testing.T) {
	r := newSyncRig(t)
	r.runPoller(t, 1, false)
	r.double.AddIncomingMessage(connectortest.NewAddress(), "while down", time.Time{})
	r.double.SetDown(true)
	p := r.runPoller(t, 2, false)
	if st := p.Status(); st.ConsecutiveFailures == 0 || st.LastError == "" {
		t.Errorf("status while down: %+v", st)
	}
	r.double.SetDown(false)
	r.runPoller(t, 1, false)
	if types, _ := r.byType(t); types["transport.messageReceived"] != 1 {
		t.Errorf("after the Connector came back: %v", types)
	}
}

func TestSyncIntervalInsideDuplicateWindow(t *testing.T) {
	if err := (producer.SyncConfig{Interval: 5 * time.Minute}).Validate(10 * time.Minute); err == nil {
		t.Error("5m interval with a 10m window accepted")
	}
	if err := (producer.SyncConfig{Interval: 30 * time.Second}).Validate(10 * time.Minute); err != nil {
		t.Error(err)
	}
}

// One running poller sees what changes between its rounds: its states are
// cached in memory after the first round, and a relationship whose status
// changes, or a new message, must still be published — each once.
func TestPollerPublishesChangesBetweenRounds(t *testing.T) {
	r := newSyncRig(t)
	rel := r.double.AddIncomingRelationship(connectortest.NewAddress(), "")
	r.double.AddIncomingMessage(connectortest.NewAddress(), "known", time.Time{})
	client, err := connector.New(r.double.ClientConfig(), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := producer.NewPoller(client, r.pub, r.js, router.DefaultSource, producer.SyncConfig{Interval: 20 * time.Millisecond},
		prometheus.NewRegistry(), natstest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	nextRound := func() {
		t.Helper()
		select {
		case <-p.Rounds():
		case <-time.After(20 * time.Second):
			t.Fatal("no round")
		}
	}
	// The first round records; two more fill and use the cache.
	for range 3 {
		nextRound()
	}
	if types, _ := r.byType(t); len(types) != 0 {
		t.Fatalf("steady rounds published %v", types)
	}
	if _, err := client.AcceptRelationship(context.Background(), rel.ID); err != nil {
		t.Fatal(err)
	}
	r.double.AddIncomingMessage(connectortest.NewAddress(), "new", time.Time{})
	// The first signal may be a round's from before the changes, the
	// second one's that started before them: the third round saw them.
	nextRound()
	nextRound()
	nextRound()
	types, ids := r.byType(t)
	if types["transport.relationshipChanged"] != 1 || types["transport.messageReceived"] != 1 {
		t.Errorf("after the changes: %v", types)
	}
	nextRound()
	if again, _ := r.byType(t); len(again) != len(types) || again["transport.relationshipChanged"] != 1 || again["transport.messageReceived"] != 1 {
		t.Errorf("a later round republished: %v", again)
	}
	for id, origins := range ids {
		if len(origins) != 1 || origins[0] != "sync" {
			t.Errorf("event %s: %v", id, origins)
		}
	}
}

// A Connector object the server can never store (larger than its max
// payload) is skipped with an error log and a metric; it must not stop the
// round, or every object listed after it would never be synced.
func TestPollerSkipsWhatCannotBePublished(t *testing.T) {
	r := newSyncRig(t)
	huge := strings.Repeat("x", int(r.nc.MaxPayload())+1)
	r.double.AddIncomingMessage(connectortest.NewAddress(), huge, time.Time{})
	r.double.AddIncomingMessage(connectortest.NewAddress(), "after the huge one", time.Time{})
	p := r.runPoller(t, 2, true)
	if types, _ := r.byType(t); types["transport.messageReceived"] != 1 {
		t.Errorf("published %v, want the second message", types)
	}
	if s := p.Status(); s.ConsecutiveFailures != 0 || s.LastError != "" {
		t.Errorf("status %+v: a skipped object failed the round", s)
	}
}

// In a cluster the poller's state bucket gets the stream's replicas
// (STREAM_REPLICAS), so losing a node loses neither events nor the state.
func TestPollerBucketReplicas(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	js := natstest.JetStream(t, natstest.Connect(t, c.URLs()))
	d, err := connectortest.NewServer("k", natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	client, err := connector.New(d.ClientConfig(), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	pub := producer.NewPublisher(js, router.MustSubjects("enmeshed"), producer.PublisherConfig{Timeout: 5 * time.Second, Attempts: 2}, natstest.Logger(t))
	p := producer.NewPoller(client, pub, js, router.DefaultSource, producer.SyncConfig{Interval: 50 * time.Millisecond, Replicas: 3},
		prometheus.NewRegistry(), natstest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-p.Rounds():
	case <-time.After(60 * time.Second):
		t.Fatal("no round")
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer lcancel()
	st, err := js.Stream(lctx, "KV_"+streams.SyncBucket)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().Config.Replicas; n != 3 {
		t.Errorf("state bucket has %d replicas, want 3", n)
	}
}

// A sync state bucket deleted while the poller runs is created again with
// an error log, and the next round is a first run: it records what the
// Connector holds (the known cache must not hide it) without publishing.
func TestPollerRecreatesADeletedBucket(t *testing.T) {
	r := newSyncRig(t)
	r.double.AddIncomingMessage(connectortest.NewAddress(), "known", time.Time{})
	client, err := connector.New(r.double.ClientConfig(), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	logs := &natstest.LogBuffer{}
	p := producer.NewPoller(client, r.pub, r.js, router.DefaultSource, producer.SyncConfig{Interval: 20 * time.Millisecond},
		prometheus.NewRegistry(), slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for range 2 {
		select {
		case <-p.Rounds():
		case <-time.After(20 * time.Second):
			t.Fatal("no round")
		}
	}
	if err := r.js.DeleteKeyValue(ctx, streams.SyncBucket); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the bucket created again and recorded", func() bool {
		kv, err := r.js.KeyValue(ctx, streams.SyncBucket)
		if err != nil {
			return false
		}
		keys, _ := kv.Keys(ctx)
		return slices.Contains(keys, "initialized") && len(keys) == 2
	})
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "FIRST RUN") {
		t.Errorf("no loud log of the lost bucket:\n%s", logs.String())
	}
	if types, _ := r.byType(t); len(types) != 0 {
		t.Errorf("the first run after the loss published %v", types)
	}
}
