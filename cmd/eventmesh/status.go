package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

const statusUsage = `eventmesh status [--json] [--interval 2s]

  Shows the ENMESHED stream and every durable consumer on it: pending and
  unacknowledged events, redeliveries, dead letters, pauses, last activity
  and the age of the oldest event still waiting for the consumer.

  A consumer needs attention when it is
    paused    paused on the server (eventmesh consumer resume NAME lifts it)
    at_risk   its oldest pending event is older than half the stream's max age:
              if it stays behind, events expire before it handles them
    stalled   it has work but acknowledged nothing between two looks --interval
              apart and was last active more than 3 × its ack wait ago

Flags:
  --json            one JSON document instead of the table
  --interval 2s     gap between the two looks at the consumers; the second look
                    is skipped when no consumer with work can be stalled

Exit status: 0 every consumer is healthy, 1 some consumer is paused, stalled
or at risk, 2 the state cannot be told (no server, no stream, usage error).`

// Consumer states of `eventmesh status`, most urgent first: a consumer in
// several of them shows the first one (and lists all under "problems").
const (
	stateOK      = "ok"
	stateAtRisk  = "at_risk"
	statePaused  = "paused"
	stateStalled = "stalled"
)

// stallAckWaits is how many ack waits without any activity (and no move of
// the ack floor) make a consumer with work stalled.
const stallAckWaits = 3

// statusReport is the document `eventmesh status --json` writes:
//
//	{
//	  "checked_at": "2026-03-01T10:15:02Z",   when the server answered (RFC 3339)
//	  "interval_seconds": 2,                  --interval: the gap between the two looks at the consumers
//	  "stream": {
//	    "name": "ENMESHED",
//	    "messages": 1234,                     events stored
//	    "bytes": 567890,                      bytes stored
//	    "max_bytes": 1073741824,              size limit (-1: none); a full stream refuses new events
//	    "used_fraction": 0.0005,              bytes / max_bytes (0 without a limit)
//	    "max_age_seconds": 604800,            how long an event stays (0: forever)
//	    "first_seq": 1, "last_seq": 1234,
//	    "first_time": "…", "last_time": "…",  when the oldest and newest event were stored (null: empty)
//	    "consumers": 3                        consumers of every kind on the stream
//	  },
//	  "consumers": [{                         the durables, sorted by name
//	    "name": "webhook-1a2b3c4d",           durable name
//	    "state": "ok",                        ok | paused | stalled | at_risk (the most urgent problem)
//	    "problems": [],                       every problem that applies, most urgent first
//	    "pending": 0,                         events not yet delivered (NumPending)
//	    "ack_pending": 0,                     delivered, not yet acknowledged (incl. retries waiting out a delay)
//	    "redelivered": 0,                     unacknowledged events delivered more than once
//	    "dead_lettered": 2,                   its entries in ENMESHED_DLQ (<prefix>-dlq.<name>.>)
//	    "paused_until": null,                 end of a server pause (~100 years ahead: until resumed)
//	    "last_active": "…",                   last delivery or acknowledgement (null: never)
//	    "oldest_pending_seq": 0,              stream sequence of the oldest event it has not acknowledged (0: none)
//	    "oldest_pending_time": null,          when that event was stored
//	    "oldest_pending_age_seconds": null,   its age (null: nothing pending)
//	    "ack_floor_seq": 1234,                every event up to this stream sequence is acknowledged
//	    "ack_floor_moved": true,              the ack floor moved between the two looks (false when looked at once)
//	    "ack_wait_seconds": 30,
//	    "waiting_pulls": 1,                   pull requests of running clients (0: nobody is fetching)
//	    "note": ""                            why it needs attention, for a person
//	  }],
//	  "healthy": true                         no consumer is paused, stalled or at risk (exit status 0)
//	}
type statusReport struct {
	CheckedAt time.Time        `json:"checked_at"`
	Interval  float64          `json:"interval_seconds"`
	Stream    streamStatus     `json:"stream"`
	Consumers []consumerStatus `json:"consumers"`
	Healthy   bool             `json:"healthy"`
}

type streamStatus struct {
	Name         string     `json:"name"`
	Messages     uint64     `json:"messages"`
	Bytes        uint64     `json:"bytes"`
	MaxBytes     int64      `json:"max_bytes"`
	UsedFraction float64    `json:"used_fraction"`
	MaxAge       float64    `json:"max_age_seconds"`
	FirstSeq     uint64     `json:"first_seq"`
	LastSeq      uint64     `json:"last_seq"`
	FirstTime    *time.Time `json:"first_time"`
	LastTime     *time.Time `json:"last_time"`
	Consumers    int        `json:"consumers"`
}

type consumerStatus struct {
	Name              string     `json:"name"`
	State             string     `json:"state"`
	Problems          []string   `json:"problems"`
	Pending           uint64     `json:"pending"`
	AckPending        int        `json:"ack_pending"`
	Redelivered       int        `json:"redelivered"`
	DeadLettered      uint64     `json:"dead_lettered"`
	PausedUntil       *time.Time `json:"paused_until"`
	LastActive        *time.Time `json:"last_active"`
	OldestPendingSeq  uint64     `json:"oldest_pending_seq"`
	OldestPendingTime *time.Time `json:"oldest_pending_time"`
	OldestPendingAge  *float64   `json:"oldest_pending_age_seconds"`
	AckFloorSeq       uint64     `json:"ack_floor_seq"`
	AckFloorMoved     bool       `json:"ack_floor_moved"`
	AckWait           float64    `json:"ack_wait_seconds"`
	WaitingPulls      int        `json:"waiting_pulls"`
	Note              string     `json:"note"`

	// For the table: the same values as durations.
	oldestAge time.Duration // <0: nothing pending or unknown
	activeAgo time.Duration // <0: never active
}

// runStatus runs `eventmesh status`; args follow "status". Exit codes: 0
// healthy, 1 a consumer needs attention, 2 cannot tell.
func runStatus(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, statusUsage, adminSummary, &adminConfig{})
		return 0
	}
	a := &admin{ctx: ctx, environ: environ, stdout: stdout, stderr: stderr, name: "status"}
	fs := a.flags("[--json] [--interval 2s]")
	asJSON := fs.Bool("json", false, "write one JSON document instead of the table")
	interval := fs.Duration("interval", 2*time.Second, "gap between the two looks at each consumer that tell a stalled one from a busy one")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	if *interval < 0 {
		return a.usageErr("--interval %s: want a duration of 0 or more", *interval)
	}
	healthy := false
	code := a.run(func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		rep, err := collectStatus(ctx, js, s, *interval)
		if err != nil {
			return err
		}
		healthy = rep.Healthy
		if *asJSON {
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		return writeStatus(a.stdout, rep)
	})
	switch {
	case code != 0:
		// No server, no stream, a failed request: nothing can be told.
		return 2
	case !healthy:
		return 1
	}
	return 0
}

// collectStatus looks at ENMESHED and its durables. It lists the durables
// twice, interval apart, when some consumer with work might be stalled, so
// a move of its ack floor tells progress without state kept between runs.
func collectStatus(ctx context.Context, js jetstream.JetStream, s router.Subjects, interval time.Duration) (*statusReport, error) {
	st, err := js.Stream(ctx, streams.Events)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s does not exist: start eventmesh or the producer, which create it", streams.Events)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streams.Events, err)
	}
	si := st.CachedInfo()
	first, err := consumers.Durables(ctx, js)
	if err != nil {
		return nil, err
	}
	second := first
	if mightStall(first, interval) {
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if second, err = consumers.Durables(ctx, js); err != nil {
			return nil, err
		}
	}
	before := make(map[string]*jetstream.ConsumerInfo, len(first))
	for _, c := range first {
		before[c.Name] = c
	}
	dlq, err := js.Stream(ctx, streams.DLQ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		dlq = nil // no consumer has run yet: no dead letters
	} else if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streams.DLQ, err)
	}

	rep := &statusReport{
		CheckedAt: serverNow(si.TimeStamp),
		Interval:  interval.Seconds(),
		Stream:    streamSummary(si),
		Consumers: make([]consumerStatus, 0, len(second)),
		Healthy:   true,
	}
	for _, c := range second {
		cs, err := consumerState(ctx, st, dlq, s, si.Config.MaxAge, before[c.Name], c)
		if err != nil {
			return nil, err
		}
		if cs.State != stateOK {
			rep.Healthy = false
		}
		rep.Consumers = append(rep.Consumers, cs)
	}
	return rep, nil
}

// mightStall reports whether a second look is needed: some consumer that
// is not paused has work and, interval from now, may have been idle for
// longer than stallAckWaits ack waits.
func mightStall(cs []*jetstream.ConsumerInfo, interval time.Duration) bool {
	for _, c := range cs {
		if c.Paused || !hasWork(c) {
			continue
		}
		if now := serverNow(c.TimeStamp); now.Sub(lastActivity(c))+interval > stallAckWaits*c.Config.AckWait {
			return true
		}
	}
	return false
}

func hasWork(c *jetstream.ConsumerInfo) bool { return c.NumPending+uint64(c.NumAckPending) > 0 }

// lastActive is the consumer's last delivery or acknowledgement, zero when
// it never had one.
func lastActive(c *jetstream.ConsumerInfo) time.Time {
	var t time.Time
	for _, l := range []*time.Time{c.Delivered.Last, c.AckFloor.Last} {
		if l != nil && l.After(t) {
			t = *l
		}
	}
	return t
}

// lastActivity is lastActive, or the creation of a consumer that never
// delivered anything: idle since then.
func lastActivity(c *jetstream.ConsumerInfo) time.Time {
	if t := lastActive(c); !t.IsZero() {
		return t
	}
	return c.Created
}

// serverNow is t (a time the server stamped on its answer), or the local
// clock when the server sent none. Ages are measured against the server's
// clock, which also stamped the events and activities.
func serverNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func streamSummary(si *jetstream.StreamInfo) streamStatus {
	ss := streamStatus{
		Name:      si.Config.Name,
		Messages:  si.State.Msgs,
		Bytes:     si.State.Bytes,
		MaxBytes:  si.Config.MaxBytes,
		MaxAge:    si.Config.MaxAge.Seconds(),
		FirstSeq:  si.State.FirstSeq,
		LastSeq:   si.State.LastSeq,
		Consumers: si.State.Consumers,
	}
	if ss.MaxBytes > 0 {
		ss.UsedFraction = float64(ss.Bytes) / float64(ss.MaxBytes)
	}
	if si.State.Msgs > 0 {
		ft, lt := si.State.FirstTime.UTC(), si.State.LastTime.UTC()
		ss.FirstTime, ss.LastTime = &ft, &lt
	}
	return ss
}

// consumerState builds the status of consumer c (the second look; prev is
// the first, nil when c appeared in between).
func consumerState(ctx context.Context, st, dlq jetstream.Stream, s router.Subjects, maxAge time.Duration, prev, c *jetstream.ConsumerInfo) (consumerStatus, error) {
	now := serverNow(c.TimeStamp)
	cs := consumerStatus{
		Name:         c.Name,
		Problems:     []string{},
		Pending:      c.NumPending,
		AckPending:   c.NumAckPending,
		Redelivered:  c.NumRedelivered,
		AckFloorSeq:  c.AckFloor.Stream,
		AckWait:      c.Config.AckWait.Seconds(),
		WaitingPulls: c.NumWaiting,
		oldestAge:    -1,
		activeAgo:    -1,
	}
	if prev != nil && prev != c {
		cs.AckFloorMoved = prev.AckFloor.Stream != c.AckFloor.Stream || prev.AckFloor.Consumer != c.AckFloor.Consumer
	}
	if t := lastActive(c); !t.IsZero() {
		t = t.UTC()
		cs.LastActive = &t
		cs.activeAgo = max(now.Sub(t), 0)
	}
	if c.Paused && c.Config.PauseUntil != nil {
		t := c.Config.PauseUntil.UTC()
		cs.PausedUntil = &t
	}

	if dlq != nil {
		n, err := deadLettered(ctx, dlq, s.DLQFor(c.Name))
		if err != nil {
			return cs, fmt.Errorf("consumer %s: count dead letters: %w", c.Name, err)
		}
		cs.DeadLettered = n
	}

	if hasWork(c) {
		m, err := oldestPending(ctx, st, c)
		if err != nil {
			return cs, fmt.Errorf("consumer %s: oldest pending event: %w", c.Name, err)
		}
		if m != nil {
			t := m.Time.UTC()
			age := max(now.Sub(t), 0)
			sec := age.Seconds()
			cs.OldestPendingSeq, cs.OldestPendingTime, cs.OldestPendingAge, cs.oldestAge = m.Sequence, &t, &sec, age
		}
	}

	var notes []string
	if maxAge > 0 && cs.oldestAge > maxAge/2 {
		cs.Problems = append(cs.Problems, stateAtRisk)
		left := maxAge - cs.oldestAge
		if left > 0 {
			notes = append(notes, fmt.Sprintf("oldest pending event is %s old, over half the max age %s: it expires in %s", shortDuration(cs.oldestAge), shortDuration(maxAge), shortDuration(left)))
		} else {
			notes = append(notes, fmt.Sprintf("oldest pending event is %s old, at the max age %s: it is expiring", shortDuration(cs.oldestAge), shortDuration(maxAge)))
		}
	}
	if c.Paused {
		cs.Problems = append(cs.Problems, statePaused)
		until := "until resumed"
		if !consumers.PausedUntilResumed(cs.PausedUntil, now) {
			until = "until " + cs.PausedUntil.Format(time.RFC3339)
		}
		notes = append(notes, "paused "+until+" (lift it: eventmesh consumer resume "+c.Name+")")
	}
	idle := now.Sub(lastActivity(c))
	if !c.Paused && hasWork(c) && prev != nil && !cs.AckFloorMoved && idle > stallAckWaits*c.Config.AckWait {
		cs.Problems = append(cs.Problems, stateStalled)
		n := fmt.Sprintf("no progress for %s (over %d × ack wait %s)", shortDuration(idle), stallAckWaits, shortDuration(c.Config.AckWait))
		switch {
		case c.NumWaiting == 0:
			n += "; no client is fetching: is the consumer running?"
		case c.NumRedelivered > 0:
			// Events waiting out a retry delay hold their ack-pending
			// slots: a failing receiver stops the durable.
			n += fmt.Sprintf("; %d events are being retried: is the receiver failing?", c.NumRedelivered)
		}
		notes = append(notes, n)
	}
	cs.State = stateOK
	if len(cs.Problems) > 0 {
		cs.State = cs.Problems[0]
	}
	cs.Note = strings.Join(notes, "; ")
	return cs, nil
}

// deadLettered counts the messages on filter in the DLQ stream from its
// per-subject counts (stream info with a subject filter), without reading
// them.
func deadLettered(ctx context.Context, dlq jetstream.Stream, filter string) (uint64, error) {
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// oldestPending returns the oldest event consumer c has not acknowledged:
// the first one after its ack floor that its filters match (the stream
// sequence right after the floor may belong to another subject, or be
// gone). Nil when there is none.
func oldestPending(ctx context.Context, st jetstream.Stream, c *jetstream.ConsumerInfo) (*jetstream.RawStreamMsg, error) {
	filters := c.Config.FilterSubjects
	if c.Config.FilterSubject != "" {
		filters = append(filters, c.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var oldest *jetstream.RawStreamMsg
	for _, f := range filters {
		m, err := st.GetMsg(ctx, c.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if oldest == nil || m.Sequence < oldest.Sequence {
			oldest = m
		}
	}
	return oldest, nil
}

// writeStatus writes the report as the stream summary, a table of the
// consumers and a verdict.
func writeStatus(w io.Writer, rep *statusReport) error {
	ss := rep.Stream
	size := humanBytes(int64(ss.Bytes))
	if ss.MaxBytes > 0 {
		size += fmt.Sprintf(" of %s (%.1f%%)", humanBytes(ss.MaxBytes), 100*ss.UsedFraction)
	}
	maxAge := "none"
	if ss.MaxAge > 0 {
		maxAge = shortDuration(time.Duration(ss.MaxAge * float64(time.Second)))
	}
	fmt.Fprintf(w, "stream %s: %d events, %s, max age %s", ss.Name, ss.Messages, size, maxAge)
	if ss.FirstTime != nil {
		fmt.Fprintf(w, ", first %s, last %s", ss.FirstTime.Format(time.RFC3339), ss.LastTime.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if len(rep.Consumers) == 0 {
		fmt.Fprintf(w, "no durable consumers on %s\n", ss.Name)
		return nil
	}
	fmt.Fprintln(w)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tSTATE\tPENDING\tACK-PENDING\tREDELIVERED\tDEAD\tOLDEST-PENDING\tLAST-ACTIVE\tNOTE")
	var attention []string
	for _, c := range rep.Consumers {
		oldest, active := "-", "never"
		if c.oldestAge >= 0 {
			oldest = shortDuration(c.oldestAge)
		}
		if c.activeAgo >= 0 {
			active = shortDuration(c.activeAgo) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", c.Name, c.State, c.Pending, c.AckPending, c.Redelivered,
			c.DeadLettered, oldest, active, c.Note)
		if c.State != stateOK {
			attention = append(attention, c.Name+" ("+strings.Join(c.Problems, ", ")+")")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The padding of an empty last column would trail each line.
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	fmt.Fprintln(w)
	if len(attention) == 0 {
		_, err := fmt.Fprintf(w, "healthy: %d of %d consumers ok\n", len(rep.Consumers), len(rep.Consumers))
		return err
	}
	_, err := fmt.Fprintf(w, "needs attention: %s\n", strings.Join(attention, ", "))
	return err
}

// shortDuration formats d for a person: tenths of a second below a
// minute (2.5s), whole seconds below two days (1h2m3s, 5m), hours beyond
// (3d4h).
func shortDuration(d time.Duration) string {
	if d < 0 {
		return "-" + shortDuration(-d)
	}
	if d < time.Minute {
		return strconv.FormatFloat(d.Round(100*time.Millisecond).Seconds(), 'f', -1, 64) + "s"
	}
	type part struct {
		unit time.Duration
		name string
	}
	parts := []part{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		parts = []part{{24 * time.Hour, "d"}, {time.Hour, "h"}}
		d = d.Round(time.Hour)
	}
	var b strings.Builder
	for _, p := range parts {
		if n := d / p.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, p.name)
			d -= n * p.unit
		}
	}
	return b.String()
}

// humanBytes formats n with a binary unit: 512 B, 1.5 KiB, 64.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
