package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/cmd/internal/producing"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
)

// runWebhook: the producer and the webhook consumer in one process, as
// eventmesh runs them; first flat out (the rate until the receiver has
// every event), then at a steady 1,000 events/s (the latency from handing
// the request to the HTTP client to its delivery reaching the receiver).
func (b *bencher) runWebhook(ctx context.Context, run int) error {
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	recv, err := harness.NewReceiver("") // a bare endpoint, as the relay's second hop
	if err != nil {
		return err
	}
	defer recv.Close()
	wcfg, err := b.webhookConfig(recv.URL, "new")
	if err != nil {
		return err
	}
	reg := app.NewRegistry()
	rt, err := webhook.New(env.js, b.subj, wcfg, consumers.NewMetrics(reg), b.log)
	if err != nil {
		return err
	}
	running := app.StartRuntimes(ctx, b.log, rt)
	defer running.Stop()
	prod, err := producing.Start(ctx, b.pcfg, env.nc, reg, b.log, running.Ready)
	if err != nil {
		return err
	}
	defer prod.Shutdown()
	if err := until(ctx, 30*time.Second, "the webhook durable", func() bool { return running.Ready(ctx) == nil }); err != nil {
		return err
	}
	url := "http://" + prod.HTTP.Addr() + "/events"

	n := b.events()
	start := time.Now()
	if _, err := load(ctx, url, n, messages(b.base())); err != nil {
		return err
	}
	if err := b.delivered(ctx, recv, 0, n); err != nil {
		return err
	}
	arrived, _ := recv.Arrivals()
	last := start
	for _, at := range arrived {
		if at.After(last) {
			last = at
		}
	}
	b.add("e2e", float64(n)/last.Sub(start).Seconds())

	m := min(n, latencyMax)
	ids := make([]string, m)
	sent := make([]time.Time, m)
	err = steady(ctx, url, m, steadyRate, messages(b.base()),
		func(i int, at time.Time, reply []byte) error {
			var r struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(reply, &r); err != nil || r.ID == "" {
				return fmt.Errorf("ingest reply without an id: %s", reply)
			}
			ids[i], sent[i] = r.ID, at
			return nil
		})
	if err != nil {
		return err
	}
	if err := b.delivered(ctx, recv, n, m); err != nil {
		return err
	}
	arrived, _ = recv.Arrivals()
	lat := make([]time.Duration, m)
	for i, id := range ids {
		at, ok := arrived[id]
		if !ok {
			return fmt.Errorf("event %s was acknowledged by ingest but not delivered", id)
		}
		lat[i] = at.Sub(sent[i])
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.add("latency_p50", ms(quantile(lat, 0.50)))
	b.add("latency_p99", ms(quantile(lat, 0.99)))
	b.add("latency_p999", ms(quantile(lat, 0.999)))
	return nil
}

// delivered waits until recv has want distinct events more than the from
// it had before, at most the figure's timeout.
func (b *bencher) delivered(ctx context.Context, recv *harness.Receiver, from, want int) error {
	got := func() int { return recv.Stats().Unique - from }
	err := until(ctx, b.timeout(), "the webhook receiver", func() bool { return got() >= want })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("the webhook receiver got %d of %d events within %s", got(), want, b.timeout())
	}
	return err
}
