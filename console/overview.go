package console

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

// overviewData is the overview page's.
type overviewData struct {
	Report     *admin.StatusReport
	Err        string
	SampledAt  time.Time
	Chart      chart
	ArchiveOff bool
	StreamSize string
	StreamMax  string
	OldestAge  string
	DLQSize    string
}

// overview shows the stream, the chart and every consumer with the states
// of `eventmesh status`, from the latest background sample.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	s := c.latest(ctx)
	d := overviewData{Report: s.report, SampledAt: s.at, ArchiveOff: c.deps.Store == nil}
	if s.err != nil {
		d.Err = s.err.Error()
	}
	if c.deps.Store != nil {
		d.Chart = c.chart.draw(c.deps.Now())
	}
	if rep := s.report; rep != nil {
		d.StreamSize = admin.HumanBytes(int64(rep.Stream.Bytes))
		if rep.Stream.MaxBytes > 0 {
			d.StreamMax = admin.HumanBytes(rep.Stream.MaxBytes)
		}
		if rep.Stream.FirstTime != nil {
			d.OldestAge = admin.ShortDuration(rep.CheckedAt.Sub(*rep.Stream.FirstTime))
		}
		if rep.DLQ != nil {
			d.DLQSize = admin.HumanBytes(int64(rep.DLQ.Bytes))
		}
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}

// pause pauses a consumer on the server, as `eventmesh consumer pause`.
func (c *Console) pause(w http.ResponseWriter, r *http.Request) { c.pauseOrResume(w, r, true) }

// resume lifts a pause, as `eventmesh consumer resume`.
func (c *Console) resume(w http.ResponseWriter, r *http.Request) { c.pauseOrResume(w, r, false) }

func (c *Console) pauseOrResume(w http.ResponseWriter, r *http.Request, pause bool) {
	name := r.PathValue("name")
	if err := router.ValidateToken(name); err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	action, msg := "resume", "resumed "+name+": it fetches again"
	var err error
	if pause {
		action, msg = "pause", "paused "+name+" on the server until resumed"
		err = consumers.PauseConsumer(r.Context(), c.deps.JS, name, "maintenance: eventmesh console")
	} else {
		err = consumers.ResumeConsumer(r.Context(), c.deps.JS, name)
	}
	c.log.Info("console action", "action", action, "consumer", name, "remote", remote(r), "err", err)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			status = http.StatusNotFound
		}
		c.fail(w, r, status, err)
		return
	}
	// One look, so the overview shows the new state at once (a pause
	// changes no chart).
	c.refreshStatus(r.Context(), 0)
	done(w, r, "/", msg)
}
