package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer states of the status report, most urgent first: a consumer in
// several of them shows the first one (and lists all under Problems).
const (
	// StateOK is a consumer that needs nothing.
	StateOK = "ok"
	// StateAtRisk is a consumer whose oldest pending event is older than
	// half the stream's max age: if it stays behind, events expire before
	// it handles them.
	StateAtRisk = "at_risk"
	// StatePaused is a consumer paused on the server.
	StatePaused = "paused"
	// StateBreakerOpen is a consumer with a process whose circuit breaker
	// is open (as the process published it to ENMESHED_CONSUMERS).
	StateBreakerOpen = "breaker_open"
	// StateDLQFull is a consumer holding unacknowledged events while
	// ENMESHED_DLQ is full: its dead letters among them wait for room, and
	// at MaxAckPending it stops (see dlqFullProblem).
	StateDLQFull = "dlq_full"
	// StateStalled is a consumer with work that acknowledged nothing
	// between the two looks and was last active more than StallAckWaits ack
	// waits ago.
	StateStalled = "stalled"
	// StateStarved is a consumer, not paused, whose oldest never-delivered
	// event is older than its starve threshold (StatusOptions.StarvedAfter
	// or 2 × its ack wait, the longer) while no new event was delivered
	// between the two looks: retries or probes of failing events keep it
	// busy, and "stalled" does not fire.
	StateStarved = "starved"
)

// DefaultStarvedAfter is the shortest starve threshold of `eventmesh
// status`: a never-delivered event older than this (or than 2 × the ack
// wait, the longer) with no new delivery between the looks is starved.
const DefaultStarvedAfter = time.Minute

// The states of the stream and of the DLQ in a StatusReport are those of
// streams.FillOf: ok, filling (at or above the warn ratio, STREAM_WARN_RATIO
// as the producer stored it in ENMESHED's metadata) and full (refusing
// events of the size it holds). Both filling and full are not healthy.

// StallAckWaits is how many ack waits without any activity (and no move
// of the ack floor) make a consumer with work stalled.
const StallAckWaits = 3

// StatusReport is the state of ENMESHED and its durables; as JSON it is
// the document `eventmesh status --json` writes:
//
//	{
//	  "checked_at": "2026-03-01T10:15:02Z",   when the server answered (RFC 3339)
//	  "interval_seconds": 2,                  --interval: the gap between the two looks at the consumers
//	  "stream": {
//	    "name": "ENMESHED",
//	    "messages": 1234,                     events stored
//	    "bytes": 567890,                      bytes stored
//	    "max_bytes": 1073741824,              size limit (-1: none); a full stream refuses new events
//	    "used_fraction": 0.0005,              bytes / max_bytes; without a byte limit messages / max messages; else 0
//	    "warn_ratio": 0.8,                    STREAM_WARN_RATIO (from the stream's metadata)
//	    "state": "ok",                        ok | filling (used_fraction ≥ warn_ratio) | full (ingest refuses events: 503)
//	    "max_age_seconds": 604800,            how long an event stays (0: forever)
//	    "first_seq": 1, "last_seq": 1234,
//	    "first_time": "…", "last_time": "…",  when the oldest and newest event were stored (null: empty)
//	    "consumers": 3                        consumers of every kind on the stream
//	  },
//	  "dlq": {                                ENMESHED_DLQ (null: no consumer has created it yet)
//	    "name": "ENMESHED_DLQ",
//	    "state": "ok",                        ok | filling | full (refuses dead letters: consumers hold their events)
//	    "messages": 2, "bytes": 2048,
//	    "max_bytes": 536870912,               size limit (-1: none)
//	    "used_fraction": 0.000004
//	  },
//	  "consumers": [{                         the durables, sorted by name
//	    "name": "webhook-1a2b3c4d",           durable name
//	    "state": "ok",                        ok | at_risk | paused | breaker_open | dlq_full | stalled | starved (the most urgent problem)
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
//	    "delivered_seq": 1234,                the last stream sequence delivered for the first time
//	    "delivered_moved": true,              delivered_seq moved between the two looks (false when looked at once)
//	    "oldest_undelivered_seq": 0,          stream sequence of the oldest event never delivered (0: none)
//	    "oldest_undelivered_age_seconds": null, its age (null: none)
//	    "starved_after_seconds": 60,          the age of oldest_undelivered that makes it starved
//	    "processes": [{…}],                   the running processes' published states (ENMESHED_CONSUMERS; docs/contract.md)
//	    "ack_wait_seconds": 30,
//	    "waiting_pulls": 1,                   pull requests of running clients (0: nobody is fetching)
//	    "note": ""                            why it needs attention, for a person
//	  }],
//	  "healthy": true                         stream and DLQ ok, every consumer ok (exit status 0)
//	}
type StatusReport struct {
	CheckedAt time.Time        `json:"checked_at"`
	Interval  float64          `json:"interval_seconds"`
	Stream    StreamStatus     `json:"stream"`
	DLQ       *DLQStatus       `json:"dlq"`
	Consumers []ConsumerStatus `json:"consumers"`
	Healthy   bool             `json:"healthy"`
}

// StreamStatus is the "stream" of a StatusReport: ENMESHED's size, limits
// and range (see StatusReport for each field).
type StreamStatus struct {
	Name         string     `json:"name"`
	Messages     uint64     `json:"messages"`
	Bytes        uint64     `json:"bytes"`
	MaxBytes     int64      `json:"max_bytes"`
	UsedFraction float64    `json:"used_fraction"`
	WarnRatio    float64    `json:"warn_ratio"`
	State        string     `json:"state"`
	MaxAge       float64    `json:"max_age_seconds"`
	FirstSeq     uint64     `json:"first_seq"`
	LastSeq      uint64     `json:"last_seq"`
	FirstTime    *time.Time `json:"first_time"`
	LastTime     *time.Time `json:"last_time"`
	Consumers    int        `json:"consumers"`
}

// DLQStatus is the "dlq" of a StatusReport: how full ENMESHED_DLQ is (see
// StatusReport for each field).
type DLQStatus struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	Messages     uint64  `json:"messages"`
	Bytes        uint64  `json:"bytes"`
	MaxBytes     int64   `json:"max_bytes"`
	UsedFraction float64 `json:"used_fraction"`
}

// ConsumerStatus is one of the "consumers" of a StatusReport: a durable's
// state, backlog and activity (see StatusReport for each field).
type ConsumerStatus struct {
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
	DeliveredSeq      uint64     `json:"delivered_seq"`
	DeliveredMoved    bool       `json:"delivered_moved"`
	// OldestUndeliveredSeq and OldestUndeliveredAge are the oldest event
	// never delivered (0 and null: none), StarvedAfter the age that makes
	// it starved.
	OldestUndeliveredSeq uint64                   `json:"oldest_undelivered_seq"`
	OldestUndeliveredAge *float64                 `json:"oldest_undelivered_age_seconds"`
	StarvedAfter         float64                  `json:"starved_after_seconds"`
	Processes            []consumers.ProcessState `json:"processes"`
	AckWait              float64                  `json:"ack_wait_seconds"`
	WaitingPulls         int                      `json:"waiting_pulls"`
	Note                 string                   `json:"note"`

	// OldestAge is OldestPendingAge as a duration, for display; -1 when
	// nothing is pending. Not in the JSON.
	OldestAge time.Duration `json:"-"`
	// ActiveAgo is how long before the report LastActive was, by the
	// server's clock; -1 when never active. Not in the JSON.
	ActiveAgo time.Duration `json:"-"`
}

// StatusOptions are the settings of Status.
type StatusOptions struct {
	// Interval is the gap between the two looks at the consumers that tell
	// a stalled one from a busy one (`eventmesh status` default: 2 s). The
	// second look is skipped when no consumer with work can be stalled or
	// starved.
	Interval time.Duration
	// StarvedAfter is the shortest starve threshold (0:
	// DefaultStarvedAfter); a consumer's is the longer of it and 2 × its
	// ack wait.
	StarvedAfter time.Duration
}

// starveThreshold is how old a never-delivered event of c must be for c
// to be starved.
func (o StatusOptions) starveThreshold(c *jetstream.ConsumerInfo) time.Duration {
	least := o.StarvedAfter
	if least <= 0 {
		least = DefaultStarvedAfter
	}
	return max(least, 2*c.Config.AckWait)
}

// Status looks at ENMESHED and its durables. It lists the durables twice,
// opt.Interval apart, when some consumer with work might be stalled, so a
// move of its ack floor tells progress without state kept between runs.
// Without ENMESHED the error matches jetstream.ErrStreamNotFound and says
// what creates the stream.
func Status(ctx context.Context, js jetstream.JetStream, s router.Subjects, opt StatusOptions) (*StatusReport, error) {
	interval := opt.Interval
	st, err := js.Stream(ctx, streams.Events)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, noStreamError(fmt.Sprintf("stream %s does not exist: start eventmesh or the producer, which create it", streams.Events))
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", streams.Events, err)
	}
	si := st.CachedInfo()
	warn := streams.WarnRatio(si.Config)
	dlq, dlqStatus, err := lookDLQ(ctx, js, warn)
	if err != nil {
		return nil, err
	}
	first, err := consumers.Durables(ctx, js)
	if err != nil {
		return nil, err
	}
	second := first
	starving, err := mightStarve(ctx, st, first, opt, interval)
	if err != nil {
		return nil, err
	}
	if mightStall(first, interval) || starving || mightHoldDeadLetters(dlqStatus, first) {
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
	procs, err := consumers.ProcessStates(ctx, js)
	if err != nil {
		return nil, err
	}

	rep := &StatusReport{
		CheckedAt: serverNow(si.TimeStamp),
		Interval:  interval.Seconds(),
		Stream:    streamSummary(si, warn),
		DLQ:       dlqStatus,
		Consumers: make([]ConsumerStatus, 0, len(second)),
	}
	rep.Healthy = rep.Stream.State == streams.FillOK && (dlqStatus == nil || dlqStatus.State == streams.FillOK)
	for _, c := range second {
		cs, err := consumerState(ctx, st, dlq, s, si.Config.MaxAge, before[c.Name], c, procs[c.Name], opt)
		if err != nil {
			return nil, err
		}
		dlqFullProblem(&cs, dlqStatus, c)
		if cs.State != StateOK {
			rep.Healthy = false
		}
		rep.Consumers = append(rep.Consumers, cs)
	}
	return rep, nil
}

// lookDLQ looks up ENMESHED_DLQ and how full it is (warn: ENMESHED's
// warn ratio); both nil when no consumer has created it yet.
func lookDLQ(ctx context.Context, js jetstream.JetStream, warn float64) (jetstream.Stream, *DLQStatus, error) {
	dlq, err := js.Stream(ctx, streams.DLQ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, nil // no consumer has run yet: no dead letters
	}
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", streams.DLQ, err)
	}
	info := dlq.CachedInfo()
	fill := streams.FillOf(info, warn)
	return dlq, &DLQStatus{Name: info.Config.Name, State: fill.State, Messages: fill.Messages, Bytes: fill.Bytes,
		MaxBytes: fill.MaxBytes, UsedFraction: fill.Ratio}, nil
}

// mightHoldDeadLetters reports whether a second look is needed to tell a
// consumer held by a full DLQ (dlqFullProblem) from one making progress.
func mightHoldDeadLetters(dlq *DLQStatus, cs []*jetstream.ConsumerInfo) bool {
	if dlq == nil || dlq.State != streams.FillFull {
		return false
	}
	for _, c := range cs {
		if c.NumAckPending > 0 {
			return true
		}
	}
	return false
}

// dlqFullProblem adds StateDLQFull to cs, the status of consumer c, when
// ENMESHED_DLQ is full and c holds unacknowledged events that did not let
// its ack floor move between the two looks (with one look, any): the
// consumer runtime holds an event whose dead letter the DLQ refuses,
// unacknowledged and in progress, until there is room; at MaxAckPending
// nothing more is delivered.
func dlqFullProblem(cs *ConsumerStatus, dlq *DLQStatus, c *jetstream.ConsumerInfo) {
	if dlq == nil || dlq.State != streams.FillFull || c.NumAckPending == 0 || cs.AckFloorMoved {
		return
	}
	note := fmt.Sprintf("%s is full and refuses dead letters: %d unacknowledged events are held (its dead letters among them) until there is room",
		streams.DLQ, c.NumAckPending)
	if c.NumAckPending >= c.Config.MaxAckPending && c.Config.MaxAckPending > 0 {
		note += fmt.Sprintf(", and delivery stopped at max ack pending %d", c.Config.MaxAckPending)
	}
	note += "; make room: eventmesh dlq ls, then eventmesh dlq replay or eventmesh dlq purge"
	// Before stalled and starved, which a full DLQ explains.
	at := slices.IndexFunc(cs.Problems, func(p string) bool { return p == StateStalled || p == StateStarved })
	if at < 0 {
		at = len(cs.Problems)
	}
	cs.Problems = slices.Insert(cs.Problems, at, StateDLQFull)
	cs.State = cs.Problems[0]
	if cs.Note != "" {
		note = cs.Note + "; " + note
	}
	cs.Note = note
}

// noStreamError is a missing stream: errors.Is(err,
// jetstream.ErrStreamNotFound) holds, but the message is ours alone.
type noStreamError string

func (e noStreamError) Error() string { return string(e) }
func (e noStreamError) Unwrap() error { return jetstream.ErrStreamNotFound }

// mightStall reports whether a second look is needed: some consumer that
// is not paused has work and, interval from now, may have been idle for
// longer than StallAckWaits ack waits.
func mightStall(cs []*jetstream.ConsumerInfo, interval time.Duration) bool {
	for _, c := range cs {
		if c.Paused || !hasWork(c) {
			continue
		}
		if now := serverNow(c.TimeStamp); now.Sub(lastActivity(c))+interval > StallAckWaits*c.Config.AckWait {
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

func streamSummary(si *jetstream.StreamInfo, warn float64) StreamStatus {
	fill := streams.FillOf(si, warn)
	ss := StreamStatus{
		UsedFraction: fill.Ratio,
		WarnRatio:    warn,
		State:        fill.State,
		Name:         si.Config.Name,
		Messages:     si.State.Msgs,
		Bytes:        si.State.Bytes,
		MaxBytes:     si.Config.MaxBytes,
		MaxAge:       si.Config.MaxAge.Seconds(),
		FirstSeq:     si.State.FirstSeq,
		LastSeq:      si.State.LastSeq,
		Consumers:    si.State.Consumers,
	}
	if si.State.Msgs > 0 {
		ft, lt := si.State.FirstTime.UTC(), si.State.LastTime.UTC()
		ss.FirstTime, ss.LastTime = &ft, &lt
	}
	return ss
}

// consumerState builds the status of consumer c (the second look; prev is
// the first, nil when c appeared in between).
func consumerState(ctx context.Context, st, dlq jetstream.Stream, s router.Subjects, maxAge time.Duration, prev, c *jetstream.ConsumerInfo,
	procs []consumers.ProcessState, opt StatusOptions) (ConsumerStatus, error) {
	now := serverNow(c.TimeStamp)
	cs := ConsumerStatus{
		Name:         c.Name,
		Problems:     []string{},
		Pending:      c.NumPending,
		AckPending:   c.NumAckPending,
		Redelivered:  c.NumRedelivered,
		AckFloorSeq:  c.AckFloor.Stream,
		DeliveredSeq: c.Delivered.Stream,
		StarvedAfter: opt.starveThreshold(c).Seconds(),
		Processes:    procs,
		AckWait:      c.Config.AckWait.Seconds(),
		WaitingPulls: c.NumWaiting,
		OldestAge:    -1,
		ActiveAgo:    -1,
	}
	if cs.Processes == nil {
		cs.Processes = []consumers.ProcessState{}
	}
	if prev != nil && prev != c {
		cs.AckFloorMoved = prev.AckFloor.Stream != c.AckFloor.Stream || prev.AckFloor.Consumer != c.AckFloor.Consumer
		cs.DeliveredMoved = prev.Delivered.Stream != c.Delivered.Stream
	}
	if t := lastActive(c); !t.IsZero() {
		t = t.UTC()
		cs.LastActive = &t
		cs.ActiveAgo = max(now.Sub(t), 0)
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
			cs.OldestPendingSeq, cs.OldestPendingTime, cs.OldestPendingAge, cs.OldestAge = m.Sequence, &t, &sec, age
		}
	}

	var notes []string
	if maxAge > 0 && cs.OldestAge > maxAge/2 {
		cs.Problems = append(cs.Problems, StateAtRisk)
		left := maxAge - cs.OldestAge
		if left > 0 {
			notes = append(notes, fmt.Sprintf("oldest pending event is %s old, over half the max age %s: it expires in %s", ShortDuration(cs.OldestAge), ShortDuration(maxAge), ShortDuration(left)))
		} else {
			notes = append(notes, fmt.Sprintf("oldest pending event is %s old, at the max age %s: it is expiring", ShortDuration(cs.OldestAge), ShortDuration(maxAge)))
		}
	}
	if c.Paused {
		cs.Problems = append(cs.Problems, StatePaused)
		until := "until resumed"
		if !consumers.PausedUntilResumed(cs.PausedUntil, now) {
			until = "until " + cs.PausedUntil.Format(time.RFC3339)
		}
		notes = append(notes, "paused "+until+" (lift it: eventmesh consumer resume "+c.Name+")")
	}
	if problem, note := breakerOpen(procs, now); problem != "" {
		cs.Problems = append(cs.Problems, problem)
		notes = append(notes, note)
	}
	idle := now.Sub(lastActivity(c))
	if !c.Paused && hasWork(c) && prev != nil && !cs.AckFloorMoved && idle > StallAckWaits*c.Config.AckWait {
		cs.Problems = append(cs.Problems, StateStalled)
		n := fmt.Sprintf("no progress for %s (over %d × ack wait %s)", ShortDuration(idle), StallAckWaits, ShortDuration(c.Config.AckWait))
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
	problem, note, err := starved(ctx, st, &cs, prev, c, opt)
	if err != nil {
		return cs, fmt.Errorf("consumer %s: oldest undelivered event: %w", c.Name, err)
	}
	if problem != "" {
		cs.Problems = append(cs.Problems, problem)
		notes = append(notes, note)
	}
	cs.State = StateOK
	if len(cs.Problems) > 0 {
		cs.State = cs.Problems[0]
	}
	cs.Note = strings.Join(notes, "; ")
	return cs, nil
}

// breakerOpen is StateBreakerOpen with its note when some process of the
// durable published an open breaker ("" when none did).
func breakerOpen(procs []consumers.ProcessState, now time.Time) (problem, note string) {
	var open []string
	for _, p := range procs {
		if p.Breaker == consumers.BreakerOpen {
			open = append(open, fmt.Sprintf("%s pid %d for %s", p.Host, p.PID, ShortDuration(max(now.Sub(p.BreakerSince), 0))))
		}
	}
	if len(open) == 0 {
		return "", ""
	}
	return StateBreakerOpen, fmt.Sprintf("circuit breaker open in %d of %d processes (%s): its handler failed again and again, "+
		"so it fetches nothing but a probe every …_BREAKER_COOLDOWN; is the receiver down? See the consumer's log (attempt failed) "+
		"and fix the receiver: the next successful probe closes the breaker", len(open), len(procs), strings.Join(open, ", "))
}

// mightStarve reports whether a second look is needed to tell a starved
// consumer: one, not paused, whose oldest never-delivered event is, or
// within interval will be, older than its starve threshold.
func mightStarve(ctx context.Context, st jetstream.Stream, cs []*jetstream.ConsumerInfo, opt StatusOptions, interval time.Duration) (bool, error) {
	for _, c := range cs {
		if c.Paused || c.NumPending == 0 {
			continue
		}
		m, err := firstPendingAfter(ctx, st, c, c.Delivered.Stream)
		if err != nil {
			return false, fmt.Errorf("consumer %s: oldest undelivered event: %w", c.Name, err)
		}
		if m != nil && serverNow(c.TimeStamp).Sub(m.Time)+interval > opt.starveThreshold(c) {
			return true, nil
		}
	}
	return false, nil
}

// starved fills in cs's oldest never-delivered event and returns
// StateStarved with its note when c, not paused, has one older than its
// starve threshold and delivered no new event between the two looks (prev
// is the first; "" when it is not starved).
func starved(ctx context.Context, st jetstream.Stream, cs *ConsumerStatus, prev, c *jetstream.ConsumerInfo, opt StatusOptions) (problem, note string, err error) {
	if c.NumPending == 0 {
		return "", "", nil
	}
	m, err := firstPendingAfter(ctx, st, c, c.Delivered.Stream)
	if err != nil || m == nil {
		return "", "", err
	}
	age := max(serverNow(c.TimeStamp).Sub(m.Time), 0)
	sec := age.Seconds()
	cs.OldestUndeliveredSeq, cs.OldestUndeliveredAge = m.Sequence, &sec
	threshold := opt.starveThreshold(c)
	if c.Paused || prev == nil || prev == c || cs.DeliveredMoved || age <= threshold {
		return "", "", nil
	}
	note = fmt.Sprintf("%d events never delivered, the oldest %s old (over %s), and no new event delivered between the looks",
		c.NumPending, ShortDuration(age), ShortDuration(threshold))
	switch {
	case c.NumWaiting == 0:
		note += "; no client is fetching: is the consumer running?"
	case c.Config.MaxAckPending > 0 && c.NumAckPending >= c.Config.MaxAckPending:
		note += fmt.Sprintf("; every ack-pending slot (%d, …_MAX_ACK_PENDING) is held by events being retried: fix the receiver, "+
			"or dead-letter the failing events, or raise …_MAX_ACK_PENDING", c.NumAckPending)
	default:
		note += "; only retries of failing events are being attempted: fix the receiver (the consumer's log names them: attempt failed), " +
			"or dead-letter them; a restart does not help"
	}
	return StateStarved, note, nil
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
	return firstPendingAfter(ctx, st, c, c.AckFloor.Stream)
}

// firstPendingAfter returns the first event after stream sequence seq
// that consumer c's filters match; nil when there is none. After the ack
// floor it is the oldest unacknowledged event, after the delivered
// sequence the oldest never delivered.
func firstPendingAfter(ctx context.Context, st jetstream.Stream, c *jetstream.ConsumerInfo, seq uint64) (*jetstream.RawStreamMsg, error) {
	filters := c.Config.FilterSubjects
	if c.Config.FilterSubject != "" {
		filters = append(filters, c.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var oldest *jetstream.RawStreamMsg
	for _, f := range filters {
		m, err := st.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(f))
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

// ShortDuration formats d for a person, as the status notes do: tenths of
// a second below a minute (2.5s), whole seconds below two days (1h2m3s,
// 5m), hours beyond (3d4h).
func ShortDuration(d time.Duration) string {
	if d < 0 {
		return "-" + ShortDuration(-d)
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
