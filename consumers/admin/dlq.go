package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// Timeouts of the operations below, per step rather than per call, so a
// long replay is not cut off by one overall deadline.
const (
	// publishTimeout bounds one replay publish until its ack.
	publishTimeout = 10 * time.Second
	// nextTimeout bounds the wait for the next dead letter while listing; it
	// only expires when entries were deleted after the listing started.
	nextTimeout = 5 * time.Second
	// defaultAPITimeout bounds a raw JetStream API request whose context has
	// no deadline (as nats.go does for its own requests).
	defaultAPITimeout = 5 * time.Second
)

// ListDeadLetters returns the dead letters of consumer ("" = every
// consumer) stored since since (zero = all), in stream order. It reads
// ENMESHED_DLQ with an ephemeral ordered consumer and stops at the last
// sequence present when it started, so entries written meanwhile do not
// keep it going.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, s router.Subjects, consumer string, since time.Time) ([]consumers.DeadLetter, error) {
	filter := s.AllDLQ()
	if consumer != "" {
		if err := router.ValidateToken(consumer); err != nil {
			return nil, fmt.Errorf("dlq list: consumer: %w", err)
		}
		filter = s.DLQFor(consumer)
	}
	st, err := js.Stream(ctx, streams.DLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq list: stream %s: %w", streams.DLQ, err)
	}
	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{filter},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute, // a backstop: it is deleted below
	}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	c, err := js.OrderedConsumer(ctx, streams.DLQ, cfg)
	if err != nil {
		return nil, fmt.Errorf("dlq list: ordered consumer on %s: %w", streams.DLQ, err)
	}
	defer func() {
		if info := c.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = js.DeleteConsumer(dctx, streams.DLQ, info.Name)
			cancel()
		}
	}()
	pending := c.CachedInfo().NumPending
	if pending == 0 {
		return nil, nil
	}
	it, err := c.Messages(jetstream.PullMaxMessages(int(min(pending, 256))))
	if err != nil {
		return nil, fmt.Errorf("dlq list: %w", err)
	}
	defer it.Stop()
	out := make([]consumers.DeadLetter, 0, min(pending, 1024))
	for {
		nctx, cancel := context.WithTimeout(ctx, nextTimeout)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				// The rest was deleted (replayed, purged) since we started.
				return out, nil
			}
			return out, fmt.Errorf("dlq list: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return out, fmt.Errorf("dlq list: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq > state.LastSeq {
			return out, nil
		}
		dl, err := consumers.DeadLetterFromMsg(seq, m.Headers(), m.Data())
		if err != nil {
			return out, fmt.Errorf("dlq list: %w (not written by eventmesh? remove it with: nats stream rmm %s %d)", err, streams.DLQ, seq)
		}
		out = append(out, dl)
		if seq >= state.LastSeq || meta.NumPending == 0 {
			return out, nil
		}
	}
}

// GetDeadLetter returns the ENMESHED_DLQ entry with sequence seq; a missing
// one is an error wrapping jetstream.ErrMsgNotFound.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (consumers.DeadLetter, error) {
	st, err := js.Stream(ctx, streams.DLQ)
	if err != nil {
		return consumers.DeadLetter{}, fmt.Errorf("dlq get seq=%d: stream %s: %w", seq, streams.DLQ, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return consumers.DeadLetter{}, fmt.Errorf("dlq get seq=%d: %w", seq, err)
	}
	return consumers.DeadLetterFromMsg(seq, m.Header, m.Data)
}

// Selection picks dead letters in ENMESHED_DLQ: the entry with sequence
// Seq, or else those of Consumer stored since Since.
type Selection struct {
	// Consumer is the durable name whose dead letters are picked ("": every
	// consumer's). With Seq, the entry must be this consumer's.
	Consumer string
	// Since picks those stored at or after it (zero: all). Not with Seq.
	Since time.Time
	// Seq picks the one entry with this sequence in ENMESHED_DLQ (0: not
	// by sequence).
	Seq uint64
}

// SelectDeadLetters returns the dead letters sel picks, in stream order
// (see ListDeadLetters and GetDeadLetter). An entry Seq that is gone is an
// error wrapping jetstream.ErrMsgNotFound; one of another consumer than
// sel.Consumer is an error saying whose it is.
func SelectDeadLetters(ctx context.Context, js jetstream.JetStream, s router.Subjects, sel Selection) ([]consumers.DeadLetter, error) {
	if sel.Seq == 0 {
		return ListDeadLetters(ctx, js, s, sel.Consumer, sel.Since)
	}
	if !sel.Since.IsZero() {
		return nil, fmt.Errorf("dlq select seq=%d: a selection by sequence takes no time", sel.Seq)
	}
	dl, err := GetDeadLetter(ctx, js, sel.Seq)
	if err != nil {
		return nil, err
	}
	if sel.Consumer != "" && dl.Consumer != sel.Consumer {
		return nil, fmt.Errorf("dead letter seq %d belongs to consumer %s, not %s", sel.Seq, dl.Consumer, sel.Consumer)
	}
	return []consumers.DeadLetter{dl}, nil
}

// ReplayDeadLetters publishes each dead letter's event to ENMESHED on
// <prefix>-replay.<consumer>.<namespace>, which reaches that consumer only,
// with the event's headers (ce-id kept, so receivers deduplicate),
// eventmesh-origin replay, and a Nats-Msg-Id of its own
// (router.ReplayMsgID with now()) so the stream's duplicate window does not
// swallow it. After the stream acknowledged a replay, the entry is deleted
// from ENMESHED_DLQ, so what is left there is what is still dead. It stops at
// the first failure and returns how many were replayed: dls[:n].
//
// A replay to a consumer without a durable reaches nobody, while its entry
// is deleted all the same: check with RequireDurables first, as `eventmesh
// dlq replay` does.
func ReplayDeadLetters(ctx context.Context, js jetstream.JetStream, s router.Subjects, dls []consumers.DeadLetter, now func() time.Time) (int, error) {
	if len(dls) == 0 {
		return 0, nil
	}
	st, err := js.Stream(ctx, streams.DLQ)
	if err != nil {
		return 0, fmt.Errorf("dlq replay: stream %s: %w", streams.DLQ, err)
	}
	for i, dl := range dls {
		if err := replay(ctx, js, st, s, dl, now()); err != nil {
			return i, fmt.Errorf("dlq replay seq=%d: %w", dl.Seq, err)
		}
	}
	return len(dls), nil
}

func replay(ctx context.Context, js jetstream.Publisher, dlq jetstream.Stream, s router.Subjects, dl consumers.DeadLetter, at time.Time) error {
	if err := router.ValidateToken(dl.Consumer); err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	if err := router.ValidateTrigger(dl.Event.Namespace); err != nil {
		return fmt.Errorf("event %s: %w", dl.Event.ID, err)
	}
	m := dl.Event.ReplayMsg(s, dl.Consumer, at)
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	_, err := js.PublishMsg(pctx, m, jetstream.WithExpectStream(streams.Events))
	cancel()
	if err != nil {
		return fmt.Errorf("publish event %s to %s: %w", dl.Event.ID, m.Subject, err)
	}
	if err := dlq.DeleteMsg(ctx, dl.Seq); err != nil {
		// Someone else may have removed it meanwhile (a second replay, a purge).
		if _, gerr := dlq.GetMsg(ctx, dl.Seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return nil
		}
		return fmt.Errorf("event %s was replayed to %s, but deleting it from %s failed (delete it with: nats stream rmm %s %d): %w",
			dl.Event.ID, m.Subject, streams.DLQ, streams.DLQ, dl.Seq, err)
	}
	return nil
}

// PurgeDeadLetters removes every dead letter of consumer ("" = of every
// consumer) from ENMESHED_DLQ and returns how many were removed.
func PurgeDeadLetters(ctx context.Context, js jetstream.JetStream, s router.Subjects, consumer string) (uint64, error) {
	filter := s.AllDLQ()
	if consumer != "" {
		if err := router.ValidateToken(consumer); err != nil {
			return 0, fmt.Errorf("dlq purge: consumer: %w", err)
		}
		filter = s.DLQFor(consumer)
	}
	if _, err := js.Stream(ctx, streams.DLQ); err != nil {
		return 0, fmt.Errorf("dlq purge %s: stream %s: %w", filter, streams.DLQ, err)
	}
	// jetstream.Stream.Purge drops the server's count of purged messages,
	// so this sends the purge request itself.
	n, err := purge(ctx, js, streams.DLQ, filter)
	if err != nil {
		return 0, fmt.Errorf("dlq purge %s: %w", filter, err)
	}
	return n, nil
}

// purge purges the messages on filter from stream with the JetStream API
// request STREAM.PURGE and returns the server's count.
func purge(ctx context.Context, js jetstream.JetStream, stream, filter string) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultAPITimeout)
		defer cancel()
	}
	req, err := json.Marshal(jetstream.StreamPurgeRequest{Subject: filter})
	if err != nil {
		return 0, err
	}
	reply, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"STREAM.PURGE."+stream, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error,omitempty"`
		Success bool                `json:"success"`
		Purged  uint64              `json:"purged"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, fmt.Errorf("purge response: %w", err)
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	if !resp.Success {
		return 0, errors.New("the server did not confirm the purge")
	}
	return resp.Purged, nil
}

// apiPrefix is the JetStream API prefix js sends its requests to.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}
