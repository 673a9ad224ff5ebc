package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
)

// rssBinaries are the binaries of the peak-RSS rows, in table order, the
// producer first: it creates the stream the others read.
var rssBinaries = []string{"producer", "webhook", "archiver", "autoaccept"}

// build builds the binaries of the peak-RSS rows from the source checkout
// that holds the working directory.
func (b *bencher) build() error {
	wd, err := os.Getwd()
	if err == nil {
		wd, err = harness.ModuleRootOf(wd)
	}
	if err != nil {
		return errors.New("not run from a source checkout of github.com/eventmesh/eventmesh (the RSS rows build its binaries with go build)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		return errors.New("no Go toolchain on PATH to build the binaries")
	}
	fmt.Fprintln(b.stderr, "building cmd/producer, cmd/webhook, cmd/archiver, cmd/autoaccept for the RSS rows ...")
	bins, err := harness.BuildFrom(wd, filepath.Join(b.tmp, "bin"), rssBinaries...)
	if err != nil {
		return fmt.Errorf("go build failed: %.300s", err)
	}
	b.bins = bins
	return nil
}

// runRSS runs the producer, webhook, archiver and autoaccept binaries
// against the embedded server (over TCP), posts relationshipChanged events
// to the producer's ingest at a steady 1,000/s (so every consumer handles
// every event), waits until every consumer has settled them, and reads
// each process's VmHWM. The binaries run with their defaults.
func (b *bencher) runRSS(ctx context.Context, run int) error {
	if b.bins == nil {
		return nil
	}
	env, err := b.startEnv()
	if err != nil {
		return err
	}
	defer env.close()
	recv, err := harness.NewReceiver("")
	if err != nil {
		return err
	}
	defer recv.Close()
	m := min(b.events(), rssMax)
	conn, ids, err := b.newConnector(m)
	if err != nil {
		return err
	}
	defer conn.Close()
	wcfg, err := b.webhookConfig(recv.URL, "")
	if err != nil {
		return err
	}
	// Readiness (GET /readyz) of each, and the archiver's API.
	addrs := map[string]string{}
	for _, name := range append(slices.Clone(rssBinaries), "archive-api") {
		if addrs[name], err = harness.FreeAddr(); err != nil {
			return err
		}
	}
	common := []string{"NATS_URL=" + env.srv.ClientURL(), "LOG_LEVEL=warn"}
	envs := map[string][]string{
		"producer":   {"INGEST_ADDR=" + addrs["producer"]},
		"webhook":    {"WEBHOOK_URL=" + recv.URL, "WEBHOOK_SECRET=" + secret},
		"archiver":   {"DATA_DIR=" + filepath.Join(env.dir, "archive"), "ARCHIVE_ADDR=" + addrs["archive-api"]},
		"autoaccept": {"AUTOACCEPT_ENABLED=true", "CONNECTOR_URL=" + conn.URL(), "CONNECTOR_API_KEY=" + connKey},
	}
	var procs []*harness.Process
	defer func() {
		for _, p := range procs {
			p.Stop(20 * time.Second)
		}
	}()
	for _, name := range rssBinaries {
		e := append(slices.Clone(common), envs[name]...)
		if name != "producer" {
			e = append(e, "HTTP_ADDR="+addrs[name])
		}
		p := harness.NewProcess(name, b.bins[name], addrs[name], e...)
		p.ReadyTimeout = 30 * time.Second
		procs = append(procs, p)
		if err := p.Start(); err != nil {
			return err
		}
	}

	var last atomic.Uint64
	err = steady(ctx, "http://"+addrs["producer"]+"/events", m, steadyRate,
		func(i int) []byte { return harness.Event{Trigger: relNS, Data: relationship(ids[i])}.Body() },
		func(i int, _ time.Time, reply []byte) error {
			var r struct {
				Seq uint64 `json:"stream_seq"`
			}
			if err := json.Unmarshal(reply, &r); err != nil || r.Seq == 0 {
				return fmt.Errorf("ingest reply without a stream_seq: %s", reply)
			}
			for {
				old := last.Load()
				if r.Seq <= old || last.CompareAndSwap(old, r.Seq) {
					return nil
				}
			}
		})
	if err != nil {
		return err
	}
	if _, err := b.settled(ctx, env.js, "rss", []string{wcfg.Webhook.DurableName(), archiver.Name, autoaccept.Name}, last.Load()); err != nil {
		return err
	}
	for _, p := range procs {
		rss, err := p.PeakRSS()
		if err != nil {
			return err
		}
		b.add("rss_"+p.Name, float64(rss)/1e6)
	}
	return nil
}
