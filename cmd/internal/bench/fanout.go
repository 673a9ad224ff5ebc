package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
)

// runFanout: a backlog of n relationshipChanged events (new incoming
// relationship requests, so every consumer has work: the webhook delivers
// each, the archiver stores each, autoaccept reads and accepts each through
// the Connector's API, here connectortest's double) consumed by the three
// consumers at once, against three raw durables doing nothing but ack.
func (b *bencher) runFanout(ctx context.Context, run int) error {
	env, err := b.startStream(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	recv, err := harness.NewReceiver("")
	if err != nil {
		return err
	}
	defer recv.Close()
	n, now := b.events(), time.Now()
	conn, ids, err := b.newConnector(n)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, seqs, err := publish(ctx, env.js, b.subj, n, func(i int) router.Event {
		data := relationship(ids[i])
		id, _ := router.EventID(router.DefaultSource, relNS, data)
		return router.Event{ID: id, Namespace: relNS, Source: router.DefaultSource, Time: now, Origin: router.OriginWebhook, Data: data}
	})
	if err != nil {
		return err
	}
	last := seqs[len(seqs)-1]

	ceiling := func() error {
		rates, err := b.rawConsume(ctx, env.js, "fanout", []string{"bench-fan-1", "bench-fan-2", "bench-fan-3"}, n, last)
		if err != nil {
			return err
		}
		b.add("fanout_raw", slices.Min(rates))
		return nil
	}
	ours := func() error {
		reg := app.NewRegistry()
		metrics := consumers.NewMetrics(reg)
		wcfg, err := b.webhookConfig(recv.URL, "all")
		if err != nil {
			return err
		}
		wh, err := webhook.New(env.js, b.subj, wcfg, metrics, b.log)
		if err != nil {
			return err
		}
		acfg, err := b.archiveConfig("")
		if err != nil {
			return err
		}
		arch, err := archiving.New(ctx, env.js, b.subj, acfg, filepath.Join(env.dir, "archive"), metrics, reg, b.log)
		if err != nil {
			return err
		}
		defer arch.Close()
		xcfg, err := app.Load[autoaccept.ConsumerConfig]([]string{"AUTOACCEPT_ENABLED=true"})
		if err != nil {
			return err
		}
		ccfg, err := app.Load[connector.Config]([]string{"CONNECTOR_URL=" + conn.URL(), "CONNECTOR_API_KEY=" + connKey})
		if err != nil {
			return err
		}
		aa, err := autoaccept.New(env.js, b.subj, xcfg, ccfg, metrics, reg, b.log)
		if err != nil {
			return err
		}
		start := time.Now()
		running := app.StartRuntimes(ctx, b.log, wh, arch.Archiver, aa)
		names := []string{wh.Name(), archiver.Name, autoaccept.Name}
		done, err := b.settled(ctx, env.js, "fanout", names, last)
		running.Stop()
		if err != nil {
			return err
		}
		rates := make([]float64, len(done))
		for i, t := range done {
			rates[i] = float64(n) / t.Sub(start).Seconds()
		}
		if got := recv.Stats().Unique; got != n {
			return fmt.Errorf("fan-out: the receiver got %d of %d events", got, n)
		}
		pending, err := b.pending(ctx, conn)
		if err != nil {
			return fmt.Errorf("fan-out: %w", err)
		}
		if pending > 0 {
			return fmt.Errorf("fan-out: autoaccept accepted %d of %d relationships", n-pending, n)
		}
		b.add("fanout", slices.Min(rates))
		b.add("fanout_webhook", rates[0])
		b.add("fanout_archiver", rates[1])
		b.add("fanout_autoaccept", rates[2])
		return deleteDurables(ctx, env.js, names...)
	}
	return both(run, ceiling, ours)
}

// newConnector starts the Connector autoaccept calls, connectortest's
// double, holding n new relationship requests from the peer (synced, so
// its REST API serves them), and returns it with their ids.
func (b *bencher) newConnector(n int) (*connectortest.Server, []string, error) {
	c, err := connectortest.NewServer(connKey, b.log)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.AddIncomingRelationship(peerAddress, templateID).ID
	}
	c.SyncNow()
	return c, ids, nil
}

// pending returns how many relationships on the double are still pending.
func (b *bencher) pending(ctx context.Context, conn *connectortest.Server) (int, error) {
	c := conn.ClientConfig()
	c.Timeout = b.timeout()
	cl, err := connector.New(c, b.log)
	if err != nil {
		return 0, err
	}
	rs, err := cl.Relationships(ctx, connector.Where("status", connector.StatusPending))
	return len(rs), err
}
