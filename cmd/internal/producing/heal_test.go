package producing_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// A deleted ENMESHED is set up again by the producer within seconds;
// the webhook consumer (start "new", its default) sets its durable up
// again from the new stream's first event, so events accepted in between
// reach the receiver; a deleted ENMESHED_DLQ is created again when a dead
// letter finds it missing.
func TestDeletedStreamsAreSetUpAgain(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.ClientURL())
	js := natstest.JetStream(t, nc)
	logs := &natstest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})

	var mu sync.Mutex
	got := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte("poison")) {
			w.WriteHeader(http.StatusBadRequest) // dead-lettered at once
			return
		}
		mu.Lock()
		got[string(body)]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	delivered := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		for body := range got {
			if strings.Contains(body, `"`+id+`"`) {
				return true
			}
		}
		return false
	}

	c := testProducerConfig()
	// Long: the stream must come back because a publish found it missing
	// (streams' own test covers the periodic look).
	c.StreamWatch = time.Minute
	p, err := producing.Start(context.Background(), c, nc, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()

	wc := webhook.ConsumerConfig{Order: "none",
		Webhook: webhook.Config{URL: recv.URL, Format: "enmeshed", Triggers: "**", APIKeyHeader: "X-API-KEY",
			Timeout: 5 * time.Second, RateBurst: 1, RetryableStatus: []int{408, 425}},
		// Start is left empty: the webhook's default, "new".
		Runtime: consumers.Config{AckWait: 5 * time.Second, MaxDeliver: 5, MaxAckPending: 100, Concurrency: 2,
			Backoff: consumers.Schedule{30 * time.Millisecond}, DrainTimeout: 5 * time.Second}}
	rt, err := webhook.New(js, router.MustSubjects("enmeshed"), wc, consumers.NewMetrics(prometheus.NewRegistry()), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- rt.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("runtime: %v", err)
		}
	}()
	natstest.WaitFor(t, 10*time.Second, "the webhook consumer", func() bool { return rt.Ready(ctx) == nil })

	post := func(id string) int {
		body := fmt.Sprintf(`{"trigger":"transport.messageReceived","data":{"id":%q}}`, id)
		resp, err := http.Post("http://"+p.HTTP.Addr()+"/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("MSGbefore"); code != 200 {
		t.Fatalf("before: ingest answered %d", code)
	}
	natstest.WaitFor(t, 10*time.Second, "the first event at the receiver", func() bool { return delivered("MSGbefore") })

	if err := js.DeleteStream(context.Background(), streams.Events); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	// Ingest takes events again within 10 s; each accepted one must arrive.
	var accepted []string
	for i := 0; ; i++ {
		id := fmt.Sprintf("MSGgap%d", i)
		if code := post(id); code == 200 {
			accepted = append(accepted, id)
			break
		} else if time.Since(deleted) > 10*time.Second {
			t.Fatalf("ingest still answers %d %s after the stream was deleted", code, time.Since(deleted))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("ingest took events again %s after the deletion", time.Since(deleted).Round(time.Millisecond))
	if code := post("MSGafter"); code != 200 {
		t.Fatalf("after: ingest answered %d", code)
	}
	accepted = append(accepted, "MSGafter")
	for _, id := range accepted {
		natstest.WaitFor(t, 15*time.Second, id+" at the receiver", func() bool { return delivered(id) })
	}
	if !strings.Contains(logs.String(), "stream ENMESHED is missing") {
		t.Error("no error log names the missing stream")
	}
	info, err := js.Consumer(context.Background(), streams.Events, wc.Webhook.DurableName())
	if err != nil {
		t.Fatal(err)
	}
	if pol := info.CachedInfo().Config.DeliverPolicy; pol != jetstream.DeliverAllPolicy {
		t.Errorf("durable set up again with deliver policy %s, want all", pol)
	}

	// A dead letter finds ENMESHED_DLQ deleted: it is created again and
	// the dead letter lands.
	if err := js.DeleteStream(context.Background(), streams.DLQ); err != nil {
		t.Fatal(err)
	}
	if code := post("MSGpoison"); code != 200 {
		t.Fatalf("poison: ingest answered %d", code)
	}
	natstest.WaitFor(t, 15*time.Second, "the dead letter in a re-created "+streams.DLQ, func() bool {
		st, err := js.Stream(context.Background(), streams.DLQ)
		return err == nil && st.CachedInfo().State.Msgs == 1
	})
}
