package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// The bridge binary built with -tags kafka, publishing into an in-process
// fake Kafka cluster (kfake), SIGKILLed three times while events arrive and
// restarted: every event is in the topic afterwards, the extra records (an
// event produced but not yet acknowledged at a kill) counted.
func TestKillBridgeKafka(t *testing.T) {
	skipShort(t)
	bridge := buildBridge(t, "kafka")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := startNATS(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	subjects := router.MustSubjects(router.DefaultPrefix)
	ctx := context.Background()
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(ctx, js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	const durable, events, kills = "bridge-kill-kafka", 600, 3
	p := harness.NewProcess("bridge", bridge, addr, "NATS_URL="+srv.ClientURL(), "HTTP_ADDR="+addr,
		"BRIDGE_URL=kafka://"+strings.Join(c.ListenAddrs(), ",")+"/events", "BRIDGE_DURABLE="+durable, "BRIDGE_START=all", "LOG_LEVEL=warn")
	p.ReadyTimeout = 30 * time.Second
	if err := p.Start(); err != nil {
		t.Fatalf("%v\n%s", err, p.Tail(2000))
	}
	defer p.Stop(20 * time.Second)

	ids := make([]string, 0, events)
	for i := range events {
		e := harness.MessageReceived("killkafka", i, 0)
		ev := router.Event{Namespace: e.Trigger, Source: "chaos", Time: time.Now().UTC(), Origin: router.OriginWebhook, Data: e.Data}
		ev.ID = router.HashID(ev.Source, ev.Namespace, fmt.Sprint("killkafka", i))
		if _, err := js.PublishMsg(ctx, ev.Msg(subjects)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
		if i > 0 && i%(events/(kills+1)) == 0 {
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // down for a moment: events pile up
			if err := p.Start(); err != nil {
				t.Fatalf("%v\n%s", err, p.Tail(2000))
			}
		}
		time.Sleep(5 * time.Millisecond) // about 150 events/s with the publish
	}
	natstest.WaitFor(t, 2*time.Minute, "every event acknowledged", func() bool {
		cons, err := js.Consumer(ctx, streams.Events, durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= events
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	records := 0
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for len(got) < events && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == router.HeaderID {
					got[string(h.Value)]++
					records++
				}
			}
		})
	}
	lost := 0
	for _, id := range ids {
		if got[id] == 0 {
			lost++
		}
	}
	t.Logf("killed the bridge %d times: %d events, %d records, %d lost, %d extra records", p.Kills(), events, records, lost, records-len(got))
	if lost > 0 || p.Kills() != kills {
		t.Errorf("%d events lost, %d kills (want 0 lost, %d kills)", lost, p.Kills(), kills)
	}
}
