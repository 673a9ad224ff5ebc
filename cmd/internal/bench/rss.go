package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
)

// rssBinaries are the binaries of the peak-RSS rows, in table order and
// the order they start in: the producer first, as it creates the stream
// the others read, and the console after the archiver, as it opens the
// archive the archiver creates.
var rssBinaries = []string{"producer", "webhook", "archiver", "autoaccept", "console"}

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
	fmt.Fprintf(b.stderr, "building cmd/%s for the RSS rows ...\n", strings.Join(rssBinaries, ", cmd/"))
	bins, err := harness.BuildFrom(wd, filepath.Join(b.tmp, "bin"), rssBinaries...)
	if err != nil {
		return fmt.Errorf("go build failed: %.300s", err)
	}
	b.bins = bins
	return nil
}

// runRSS runs the producer, webhook, archiver, autoaccept and console
// binaries against the embedded server (over TCP), posts
// relationshipChanged events to the producer's ingest at a steady 1,000/s
// (so every consumer handles every event), waits until every consumer has
// settled them, and reads each process's VmHWM. The binaries run with
// their defaults; the console reads the archiver's archive and, all the
// while, serves an operator's pages (browse), so that its peak is that of
// a console in use rather than an idle one.
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
	// Readiness (GET /readyz) of each, the archiver's API and the
	// console's pages.
	addrs := map[string]string{}
	for _, name := range append(slices.Clone(rssBinaries), "archive-api", "console-ui") {
		if addrs[name], err = harness.FreeAddr(); err != nil {
			return err
		}
	}
	common := []string{"NATS_URL=" + env.srv.ClientURL(), "LOG_LEVEL=warn"}
	archive := "DATA_DIR=" + filepath.Join(env.dir, "archive") // the archiver writes DATA_DIR/archive.db, the console reads it
	envs := map[string][]string{
		"producer":   {"INGEST_ADDR=" + addrs["producer"]},
		"webhook":    {"WEBHOOK_URL=" + recv.URL, "WEBHOOK_SECRET=" + secret},
		"archiver":   {archive, "ARCHIVE_ADDR=" + addrs["archive-api"]},
		"autoaccept": {"AUTOACCEPT_ENABLED=true", "CONNECTOR_URL=" + conn.URL(), "CONNECTOR_API_KEY=" + connKey},
		"console":    {archive, "CONSOLE_ADDR=" + addrs["console-ui"]},
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

	stopBrowsing := browse(ctx, "http://"+addrs["console-ui"])
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
		stopBrowsing()
		return err
	}
	_, err = b.settled(ctx, env.js, "rss", []string{wcfg.Webhook.DurableName(), archiver.Name, autoaccept.Name}, last.Load())
	if berr := stopBrowsing(); err == nil {
		err = berr
	}
	if err != nil {
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

// browse fetches the console's overview and a search of the archive for
// relationshipChanged events (the first page of 50, with their outcomes)
// at once and then every second, as an operator keeping an eye on the
// mesh would, over loopback (no login), until the returned stop is
// called. stop returns the first failure: an error or an answer other
// than 200. The pages are read to the end, so the console renders them
// whole.
func browse(ctx context.Context, base string) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	pages := []string{base + "/", base + "/events?" + url.Values{"type": {relNS}}.Encode()}
	c := &http.Client{Timeout: 30 * time.Second}
	var failed error
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, page := range pages {
				if err := getPage(ctx, c, page); err != nil {
					if ctx.Err() == nil {
						failed = err
					}
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		c.CloseIdleConnections()
		return failed
	}
}

// getPage GETs a page of the console and reads it whole; it must be a 200.
func getPage(ctx context.Context, c *http.Client, page string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("console: GET %s: %s: %.200s", page, resp.Status, body)
	}
	return err
}
