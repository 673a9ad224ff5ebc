package console

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
)

// errArchiveOff is shown by the event pages when there is no archive.
var errArchiveOff = errors.New("the archive is off (ARCHIVE_ENABLED=false): there are no events to search; " +
	"the overview, dead letters and Live work without it")

// eventsData is the search page's.
type eventsData struct {
	Q          url.Values // the form, as submitted
	Searched   bool
	Rows       []eventRow
	Next       string // the query of the next page
	ArchiveOff bool
	Err        string
}

// eventRow is one event of a search's page with each consumer's latest
// outcome.
type eventRow struct {
	store.Event
	Last []store.Outcome
}

// events is the archive's search, as `eventmesh archive query`: type
// pattern, peer, id, time range, outcome, paged by the store's cursor.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := eventsData{Q: q, ArchiveOff: c.deps.Store == nil}
	if d.ArchiveOff {
		c.render(w, r, http.StatusOK, "events", "Events", d)
		return
	}
	fq := url.Values{"outcomes": {"true"}, "limit": {"50"}}
	for _, k := range []string{"type", "source", "since", "until", "id", "outcome", "peer", "cursor"} {
		if v := q.Get(k); v != "" {
			fq.Set(k, v)
		}
	}
	f, err := archiver.FilterFromQuery(fq, c.deps.Now())
	if err != nil {
		d.Err = err.Error()
		c.render(w, r, http.StatusBadRequest, "events", "Events", d)
		return
	}
	pg, err := c.deps.Store.Query(r.Context(), f)
	if err != nil {
		d.Err = err.Error()
		c.render(w, r, http.StatusBadGateway, "events", "Events", d)
		return
	}
	d.Searched = true
	for _, e := range pg.Events {
		d.Rows = append(d.Rows, eventRow{Event: e, Last: archiver.LastOutcomes(e)})
	}
	if pg.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", pg.Next)
		d.Next = nq.Encode()
	}
	c.render(w, r, http.StatusOK, "events", "Events", d)
}

// eventData is an event page's.
type eventData struct {
	Event     store.Event
	Headers   []header
	Body      string
	Timeline  []store.Outcome
	Consumers []string // durables a replay may go to
}

type header struct{ Name, Value string }

// event shows one event: its headers, its data pretty-printed, and a
// timeline of every consumer's attempts and outcomes.
func (c *Console) event(w http.ResponseWriter, r *http.Request) {
	if c.deps.Store == nil {
		c.fail(w, r, http.StatusNotFound, errArchiveOff)
		return
	}
	e, err := c.deps.Store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no event %q in the archive (pruned, erased, or not yet archived)", r.PathValue("id")))
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := eventData{Event: e, Timeline: e.Outcomes}
	for _, k := range slices.Sorted(maps.Keys(e.Headers)) {
		for _, v := range e.Headers[k] {
			d.Headers = append(d.Headers, header{k, v})
		}
	}
	var body bytes.Buffer
	admin.WriteBody(&body, e.Data)
	d.Body = body.String()
	if !c.cfg.ReadOnly {
		if ds, err := consumers.Durables(r.Context(), c.deps.JS); err == nil {
			for _, di := range ds {
				d.Consumers = append(d.Consumers, di.Name)
			}
		}
	}
	c.render(w, r, http.StatusOK, "event", "Event "+e.ID, d)
}

// replayEvent publishes the event again to one consumer only, as
// `eventmesh archive replay --to-consumer`.
func (c *Console) replayEvent(w http.ResponseWriter, r *http.Request) {
	if c.deps.Store == nil {
		c.fail(w, r, http.StatusNotFound, errArchiveOff)
		return
	}
	id, to := r.PathValue("id"), r.PostFormValue("consumer")
	if err := router.ValidateToken(to); err != nil {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("consumer: %w", err))
		return
	}
	e, err := c.deps.Store.Get(r.Context(), id)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err := admin.RequireDurables(r.Context(), c.deps.JS, to); err != nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("consumer %s has no durable, so a replay would reach nobody: %w", to, err))
		return
	}
	n, err := archiver.Replay(r.Context(), c.deps.JS, c.deps.Subjects, []store.Event{e}, to, time.Now)
	c.log.Info("console action", "action", "replay event", "event_id", id, "consumer", to, "replayed", n, "remote", remote(r), "err", err)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	done(w, r, "/events/"+url.PathEscape(id), "replayed to "+to+": its outcome appears here once the archiver records it")
}
