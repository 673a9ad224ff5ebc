package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// Sources are where Account looks for the events of a run.
type Sources struct {
	// Name labels the report (the scenario).
	Name string
	// Load holds the events ingest acknowledged (required).
	Load *LoadGen
	// Receiver holds the deliveries (required): the webhook Receiver, or
	// a broker's consumer (RedisSink) for the bridge.
	Receiver Deliveries
	// JS reads ENMESHED and ENMESHED_DLQ (required). In a cluster, connect
	// it to a live node.
	JS jetstream.JetStream
	// Prefix is SUBJECT_PREFIX; default enmeshed.
	Prefix string
	// Consumer is the webhook durable whose dead letters count; "" counts
	// every consumer's.
	Consumer string
	// Archive turns on the archive count: the store ArchiveDSN names, or
	// (ArchiveDSN empty) the SQLite archive.db under ArchiveDir, the
	// archiver's DATA_DIR.
	Archive    bool
	ArchiveDSN string
	ArchiveDir string
	// Durables are durables on ENMESHED that Settle waits to be idle
	// (nothing pending, nothing awaiting an ack): then no redelivery is
	// still to come, and the duplicate count is final.
	Durables []string
	// Started is when the run started, for the report's elapsed time.
	Started time.Time
}

// Deliveries is where the accounting finds what was delivered, by event id.
type Deliveries interface {
	Delivered(id string) bool
	Deliveries() map[string]int
	Arrivals() (first, last map[string]time.Time)
	Stats() ReceiverStats
}

// Report accounts for every event ingest acknowledged (a 2xx to the load
// generator): stored, archived, delivered, dead-lettered or lost. Counts
// are of distinct event ids unless they say otherwise.
type Report struct {
	Name    string
	Elapsed time.Duration
	Load    LoadStats

	Accepted int // acknowledged by ingest

	Stored            int      // accepted and found in ENMESHED
	MissingFromStream []string // accepted but not in ENMESHED: an acknowledged event the stream lost
	StoredUnacked     int      // in ENMESHED without a 2xx (a publish whose answer was lost, or a client that gave up)
	StoredTwice       int      // ids stored more than once (the duplicate window should prevent it)
	Stream            jetstream.StreamState

	Archived    int      // accepted and in the archive; -1 without an archive
	NotArchived []string // accepted, not archived

	Delivered        int // accepted and delivered at least once
	Duplicates       int // deliveries beyond the first, of accepted events
	DuplicatedEvents int // accepted events delivered more than once

	DeadLettered     int            // accepted, dead-lettered and never delivered
	DeadAndDelivered int            // dead-lettered although a delivery got through (e.g. answered after the budget)
	DeadReasons      map[string]int // dead letters of accepted events by reason (shortened)
	DeadIDs          []string       // the ids dead-lettered and never delivered
	// DLQErr is why ENMESHED_DLQ could not be read (e.g. its only replica
	// was on a killed node); dead letters then count as lost.
	DLQErr string

	Lost    int      // Accepted − Delivered − DeadLettered
	LostIDs []string // the ids lost

	Receiver ReceiverStats
	// Latency from ingest's 2xx to the first delivery, of delivered events.
	LatencyP50, LatencyP99, LatencyMax time.Duration
}

// Err is nil when every acknowledged event is accounted for: stored,
// delivered or dead-lettered with a reason, and signed correctly.
func (r Report) Err() error {
	var errs []error
	if r.Lost > 0 {
		errs = append(errs, fmt.Errorf("%s: %d acknowledged events LOST (neither delivered nor dead-lettered): %s", r.Name, r.Lost, sample(r.LostIDs)))
	}
	if n := len(r.MissingFromStream); n > 0 {
		errs = append(errs, fmt.Errorf("%s: %d acknowledged events are not in the stream: %s", r.Name, n, sample(r.MissingFromStream)))
	}
	if r.Receiver.BadSignature > 0 {
		errs = append(errs, fmt.Errorf("%s: %d requests with a bad signature", r.Name, r.Receiver.BadSignature))
	}
	return errors.Join(errs...)
}

// Settled reports whether every acknowledged event is delivered or
// dead-lettered, and archived when there is an archive.
func (r Report) Settled() bool {
	return r.Lost == 0 && (r.Archived < 0 || len(r.NotArchived) == 0)
}

// roundDuration keeps two or three significant digits.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func sample(ids []string) string {
	if len(ids) > 10 {
		return strings.Join(ids[:10], " ") + fmt.Sprintf(" … (%d more)", len(ids)-10)
	}
	return strings.Join(ids, " ")
}

// String renders the report as a table.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s — %s\n", r.Name, r.Elapsed.Round(10*time.Millisecond))
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	row := func(label string, n int, note string) { fmt.Fprintf(tw, "  %s\t%7d\t%s\n", label, n, note) }
	row("accepted by ingest", r.Accepted, fmt.Sprintf("%d requests, %d 5xx and %d connection errors retried, %d gave up, %d rejected, %.0f events/s",
		r.Load.Requests, r.Load.Retried5xx, r.Load.RetriedNet, r.Load.GaveUp, r.Load.Rejected, r.Load.Rate()))
	row("stored in ENMESHED", r.Stored, fmt.Sprintf("stream: %d messages, seq %d..%d; %d stored without a 2xx; %d accepted missing; %d stored twice",
		r.Stream.Msgs, r.Stream.FirstSeq, r.Stream.LastSeq, r.StoredUnacked, len(r.MissingFromStream), r.StoredTwice))
	if r.Archived >= 0 {
		row("archived", r.Archived, fmt.Sprintf("%d accepted not archived", len(r.NotArchived)))
	}
	row("delivered (unique)", r.Delivered, fmt.Sprintf("receiver: %d requests, %d answered 500, %d 503, %d 400 (poison), %d bad signatures",
		r.Receiver.Requests, r.Receiver.Injected500, r.Receiver.Unavailable, r.Receiver.Poisoned, r.Receiver.BadSignature))
	row("delivered (duplicates)", r.Duplicates, fmt.Sprintf("extra deliveries, of %d events", r.DuplicatedEvents))
	row("dead-lettered", r.DeadLettered, fmt.Sprintf("never delivered; %d more dead-lettered after a delivery got through", r.DeadAndDelivered))
	row("LOST", r.Lost, "accepted − delivered − dead-lettered")
	tw.Flush()
	if r.Delivered > 0 {
		fmt.Fprintf(&b, "  latency ingest 2xx → first delivery: p50 %s, p99 %s, max %s\n",
			roundDuration(r.LatencyP50), roundDuration(r.LatencyP99), roundDuration(r.LatencyMax))
	}
	reasons := make([]string, 0, len(r.DeadReasons))
	for reason := range r.DeadReasons {
		reasons = append(reasons, reason)
	}
	sort.Slice(reasons, func(i, j int) bool { return r.DeadReasons[reasons[i]] > r.DeadReasons[reasons[j]] })
	for _, reason := range reasons {
		fmt.Fprintf(&b, "  dead-letter reason ×%d: %s\n", r.DeadReasons[reason], reason)
	}
	if r.DLQErr != "" {
		fmt.Fprintf(&b, "  dead-letter queue unreadable (its dead letters count as lost): %s\n", r.DLQErr)
	}
	if len(r.LostIDs) > 0 {
		fmt.Fprintf(&b, "  lost: %s\n", sample(r.LostIDs))
	}
	return b.String()
}

// Settle waits until every acknowledged event is delivered or
// dead-lettered (and archived, with an archive), at most timeout, then
// accounts. The report of a run that did not settle in time shows what is
// missing; Settle then also returns an error.
func Settle(ctx context.Context, src Sources, timeout time.Duration) (Report, error) {
	a, err := newAccountant(ctx, src)
	if err != nil {
		return Report{}, err
	}
	defer a.close()
	deadline := time.Now().Add(timeout)
	for {
		done, err := a.settled(ctx)
		if err != nil {
			return Report{}, err
		}
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			rep, err := a.account(ctx)
			if err == nil && !rep.Settled() {
				err = fmt.Errorf("%s: not settled within %s: %d lost, %d not archived", src.Name, timeout, rep.Lost, len(rep.NotArchived))
			}
			return rep, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

type accountant struct {
	src      Sources
	subjects router.Subjects
	archive  store.Store // nil without an archive
}

func newAccountant(ctx context.Context, src Sources) (*accountant, error) {
	if src.Load == nil || src.Receiver == nil || src.JS == nil {
		return nil, errors.New("harness: account: Load, Receiver and JS are required")
	}
	if src.Prefix == "" {
		src.Prefix = "enmeshed"
	}
	s, err := router.NewSubjects(src.Prefix)
	if err != nil {
		return nil, err
	}
	a := &accountant{src: src, subjects: s}
	if src.Archive {
		if a.archive, err = store.Open(ctx, src.ArchiveDSN, src.ArchiveDir); err != nil {
			return nil, fmt.Errorf("harness: account: open the archive: %w", err)
		}
	}
	return a, nil
}

func (a *accountant) close() {
	if a.archive != nil {
		a.archive.Close()
	}
}

// settled is the cheap check Settle polls: receiver first, then dead
// letters for what it lacks, then the archive.
func (a *accountant) settled(ctx context.Context) (bool, error) {
	var pending []string
	for id := range a.src.Load.AcceptedIDs() {
		if !a.src.Receiver.Delivered(id) {
			pending = append(pending, id)
		}
	}
	if len(pending) > 0 {
		dead, _, err := a.deadLetters(ctx)
		if err != nil {
			return false, nil // unreadable for now: ask again
		}
		for _, id := range pending {
			if _, ok := dead[id]; !ok {
				return false, nil
			}
		}
	}
	if a.archive != nil {
		archived, err := a.archivedIDs(ctx)
		if err != nil {
			return false, err
		}
		for id := range a.src.Load.AcceptedIDs() {
			if !archived[id] {
				return false, nil
			}
		}
	}
	for _, name := range a.src.Durables {
		c, err := a.src.JS.Consumer(ctx, streams.Events, name)
		if err != nil {
			return false, nil // e.g. no leader for a moment: ask again
		}
		info, err := c.Info(ctx)
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			return false, nil
		}
	}
	return true, nil
}

func (a *accountant) account(ctx context.Context) (Report, error) {
	accepted := a.src.Load.AcceptedIDs()
	rep := Report{Name: a.src.Name, Load: a.src.Load.Stats(), Accepted: len(accepted), Archived: -1,
		DeadReasons: map[string]int{}, Receiver: a.src.Receiver.Stats()}
	if !a.src.Started.IsZero() {
		rep.Elapsed = time.Since(a.src.Started)
	}

	stored, state, err := a.streamIDs(ctx)
	if err != nil {
		return rep, err
	}
	rep.Stream = state
	for id, n := range stored {
		if _, ok := accepted[id]; !ok {
			rep.StoredUnacked++
		}
		if n > 1 {
			rep.StoredTwice++
		}
	}
	for id := range accepted {
		if stored[id] > 0 {
			rep.Stored++
		} else {
			rep.MissingFromStream = append(rep.MissingFromStream, id)
		}
	}

	if a.archive != nil {
		archived, err := a.archivedIDs(ctx)
		if err != nil {
			return rep, err
		}
		rep.Archived = 0
		for id := range accepted {
			if archived[id] {
				rep.Archived++
			} else {
				rep.NotArchived = append(rep.NotArchived, id)
			}
		}
	}

	deliveries := a.src.Receiver.Deliveries()
	first, _ := a.src.Receiver.Arrivals()
	var latencies []time.Duration
	for id, at := range accepted {
		n := deliveries[id]
		if n == 0 {
			continue
		}
		rep.Delivered++
		if n > 1 {
			rep.Duplicates += n - 1
			rep.DuplicatedEvents++
		}
		latencies = append(latencies, max(first[id].Sub(at), 0))
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		rep.LatencyP50 = latencies[len(latencies)/2]
		rep.LatencyP99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
		rep.LatencyMax = latencies[len(latencies)-1]
	}

	dead, reasons, err := a.deadLetters(ctx)
	if err != nil {
		rep.DLQErr = err.Error()
	}
	for id := range dead {
		if _, ok := accepted[id]; !ok {
			continue
		}
		rep.DeadReasons[reasons[id]]++
		if deliveries[id] > 0 {
			rep.DeadAndDelivered++
			continue
		}
		rep.DeadLettered++
		rep.DeadIDs = append(rep.DeadIDs, id)
	}
	for id := range accepted {
		if deliveries[id] == 0 {
			if _, ok := dead[id]; !ok {
				rep.LostIDs = append(rep.LostIDs, id)
			}
		}
	}
	sort.Strings(rep.LostIDs)
	sort.Strings(rep.DeadIDs)
	sort.Strings(rep.MissingFromStream)
	sort.Strings(rep.NotArchived)
	rep.Lost = len(rep.LostIDs)
	return rep, nil
}

// deadLetters returns the ids in ENMESHED_DLQ of the consumer, each with
// the reason of its first dead letter (shortened).
func (a *accountant) deadLetters(ctx context.Context) (map[string]int, map[string]string, error) {
	ids := map[string]int{}
	reasons := map[string]string{}
	dls, err := admin.ListDeadLetters(ctx, a.src.JS, a.subjects, a.src.Consumer, time.Time{})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return ids, reasons, nil // no consumer ever dead-lettered anything
	}
	if err != nil {
		return nil, nil, fmt.Errorf("harness: account: %w", err)
	}
	for _, dl := range dls {
		if ids[dl.Event.ID]++; ids[dl.Event.ID] == 1 {
			reasons[dl.Event.ID] = shorten(dl.Reason, 120)
		}
	}
	return ids, reasons, nil
}

// shorten cuts s to at most n bytes at a rune boundary, marking a cut
// with "…".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return router.Truncate(s, n) + "…"
}

// streamIDs reads the ce-id of every message in ENMESHED (headers only,
// through an ordered consumer) up to its last sequence at the start.
func (a *accountant) streamIDs(ctx context.Context) (map[string]int, jetstream.StreamState, error) {
	st, err := a.src.JS.Stream(ctx, streams.Events)
	if err != nil {
		return nil, jetstream.StreamState{}, fmt.Errorf("harness: account: stream %s: %w", streams.Events, err)
	}
	state := st.CachedInfo().State
	ids := make(map[string]int, state.Msgs)
	if state.Msgs == 0 {
		return ids, state, nil
	}
	c, err := a.src.JS.OrderedConsumer(ctx, streams.Events, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true, InactiveThreshold: time.Minute})
	if err != nil {
		return nil, state, fmt.Errorf("harness: account: read %s: %w", streams.Events, err)
	}
	defer func() {
		if info := c.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			a.src.JS.DeleteConsumer(dctx, streams.Events, info.Name)
			cancel()
		}
	}()
	it, err := c.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, state, fmt.Errorf("harness: account: read %s: %w", streams.Events, err)
	}
	defer it.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, state, fmt.Errorf("harness: account: read %s (%d of %d messages read): %w", streams.Events, len(ids), state.Msgs, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, state, fmt.Errorf("harness: account: read %s: %w", streams.Events, err)
		}
		if md.Sequence.Stream > state.LastSeq {
			return ids, state, nil
		}
		ids[m.Headers().Get(router.HeaderID)]++
		if md.Sequence.Stream >= state.LastSeq || md.NumPending == 0 {
			return ids, state, nil
		}
	}
}

// archivedIDs reads the id of every archived event.
func (a *accountant) archivedIDs(ctx context.Context) (map[string]bool, error) {
	ids := map[string]bool{}
	f := store.Filter{Limit: store.MaxLimit}
	for {
		page, err := a.archive.Query(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("harness: account: archive: %w", err)
		}
		for _, e := range page.Events {
			ids[e.ID] = true
		}
		if page.Next == "" {
			return ids, nil
		}
		f.Cursor = page.Next
	}
}
