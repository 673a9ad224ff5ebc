package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// live is the Live page: the tail itself comes from liveStream (live.js
// opens it).
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	trigger := r.URL.Query().Get("trigger")
	if trigger == "" {
		trigger = "**"
	}
	d := struct{ Trigger, Err string }{Trigger: trigger}
	status := http.StatusOK
	if _, err := router.ParsePatterns(trigger); err != nil {
		d.Err, status = err.Error(), http.StatusBadRequest
	}
	c.render(w, r, status, "live", "Live", d)
}

// liveEvent is what the tail sends of each event: its identity, never its
// data.
type liveEvent struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Source string `json:"source"`
	Time   string `json:"time"`
	Origin string `json:"origin"`
	Seq    uint64 `json:"seq"`
}

// keepAlive is how often an idle tail sends a comment, so proxies keep
// the connection open.
const keepAlive = 15 * time.Second

// liveStream streams new events of ENMESHED as they are stored, as
// server-sent events, filtered by the Connector trigger patterns of
// ?trigger= (default **). It reads through an ordered consumer with
// headers only, so no payload passes through the console. At most
// CONSOLE_MAX_TAILS run at once; more get 503.
func (c *Console) liveStream(w http.ResponseWriter, r *http.Request) {
	trigger := r.URL.Query().Get("trigger")
	if trigger == "" {
		trigger = "**"
	}
	ps, err := router.ParsePatterns(trigger)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case c.tails <- struct{}{}:
		defer func() { <-c.tails }()
	default:
		http.Error(w, fmt.Sprintf("%d Live tails are open already (CONSOLE_MAX_TAILS): close one and try again", cap(c.tails)), http.StatusServiceUnavailable)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	subjects, exact := ps.FilterSubjects(c.deps.Subjects.Prefix())
	cons, err := c.deps.JS.OrderedConsumer(ctx, streams.Events, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy, HeadersOnly: true,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		http.Error(w, "tail "+streams.Events+": "+err.Error(), http.StatusBadGateway)
		return
	}
	msgs := make(chan jetstream.Msg, 64)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		http.Error(w, "tail "+streams.Events+": "+err.Error(), http.StatusBadGateway)
		return
	}
	defer cc.Stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": tail open\n\n")
	flusher.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case m := <-msgs:
			if !c.sendLive(w, m, ps, exact) {
				continue
			}
		}
		flusher.Flush()
	}
}

// sendLive writes m as one event of the stream when the patterns match
// it; it reports whether it wrote.
func (c *Console) sendLive(w http.ResponseWriter, m jetstream.Msg, ps router.Patterns, exact bool) bool {
	h := m.Headers()
	ns := h.Get(router.HeaderType)
	if !exact && !ps.Match(ns) {
		return false
	}
	e := liveEvent{ID: h.Get(router.HeaderID), Type: ns, Source: h.Get(router.HeaderSource), Time: h.Get(router.HeaderTime),
		Origin: h.Get(router.HeaderOrigin)}
	if md, err := m.Metadata(); err == nil {
		e.Seq = md.Sequence.Stream
	}
	b, _ := json.Marshal(e)
	fmt.Fprintf(w, "data: %s\n\n", b)
	return true
}

// tailsOpen is how many Live tails stream now (for tests).
func (c *Console) tailsOpen() int { return len(c.tails) }
