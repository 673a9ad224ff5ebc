package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderDeadAt is the header of a dead-letter copy that says when the
// consumer gave up (RFC 3339 with nanoseconds, UTC). The other dead-letter
// headers are in router (HeaderConsumer, HeaderReason, ...).
const HeaderDeadAt = "eventmesh-dead-at"

// MaxReasonBytes bounds eventmesh-reason: a reason often quotes a
// receiver's answer, and headers count against the server's max payload.
const MaxReasonBytes = 1024

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

// DeadLetter is one entry of ENMESHED_DLQ: an event a consumer gave up on,
// with why and when.
type DeadLetter struct {
	Seq       uint64       `json:"seq"`        // sequence in ENMESHED_DLQ
	Consumer  string       `json:"consumer"`   // durable name of the consumer that gave up
	Reason    string       `json:"reason"`     // why, for an operator
	Subject   string       `json:"subject"`    // the event's subject in ENMESHED
	Attempts  int          `json:"attempts"`   // deliveries made
	StreamSeq uint64       `json:"stream_seq"` // the event's sequence in ENMESHED
	DeadAt    time.Time    `json:"dead_at"`    // when the consumer gave up
	Event     router.Event `json:"event"`      // the event itself (JSON: see MarshalJSON)
	// Header holds every header of the entry as stored, for `dlq show`.
	Header nats.Header `json:"headers,omitempty"`
}

// eventJSON is router.Event as JSON: snake_case keys, the namespace as
// "type" (it is ce-type), and the data inline when it is JSON, else in
// data_base64 (as the CloudEvents JSON format does).
type eventJSON struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Source        string          `json:"source"`
	Time          time.Time       `json:"time,omitzero"`
	Origin        router.Origin   `json:"origin,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Traceparent   string          `json:"traceparent,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	DataBase64    []byte          `json:"data_base64,omitempty"`
}

func toEventJSON(e router.Event) eventJSON {
	j := eventJSON{ID: e.ID, Type: e.Namespace, Source: e.Source, Time: e.Time, Origin: e.Origin,
		CorrelationID: e.CorrelationID, Traceparent: e.Traceparent}
	if json.Valid(e.Data) {
		j.Data = e.Data
	} else if len(e.Data) > 0 {
		j.DataBase64 = e.Data
	}
	return j
}

func (j eventJSON) event() router.Event {
	e := router.Event{ID: j.ID, Namespace: j.Type, Source: j.Source, Time: j.Time, Origin: j.Origin,
		CorrelationID: j.CorrelationID, Traceparent: j.Traceparent}
	switch {
	case len(j.Data) > 0:
		e.Data = []byte(j.Data)
	case len(j.DataBase64) > 0:
		e.Data = j.DataBase64
	}
	return e
}

// MarshalJSON writes d with the event under "event" in snake_case, its data
// inline when it is JSON (compacted) and base64 in data_base64 otherwise.
// It escapes no HTML characters itself: the caller's encoder decides (see
// json.Encoder.SetEscapeHTML).
func (d DeadLetter) MarshalJSON() ([]byte, error) {
	type plain DeadLetter // without the methods, so no recursion
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		plain
		Event eventJSON `json:"event"` // shadows plain.Event
	}{plain(d), toEventJSON(d.Event)})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *DeadLetter) UnmarshalJSON(b []byte) error {
	type plain DeadLetter
	var v struct {
		plain
		Event eventJSON `json:"event"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*d = DeadLetter(v.plain)
	d.Event = v.Event.event()
	return nil
}

// DeadLetterFromMsg reads a dead letter from the headers and body of the
// ENMESHED_DLQ entry with sequence seq. The event comes from the ce-*
// headers (router.FromMsg); a missing eventmesh-consumer header or a
// malformed number or time is an error.
func DeadLetterFromMsg(seq uint64, h nats.Header, data []byte) (DeadLetter, error) {
	e, err := router.FromMsg(h, data)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter seq=%d: %w", seq, err)
	}
	dl := DeadLetter{
		Seq:      seq,
		Consumer: header(h, router.HeaderConsumer),
		Reason:   header(h, router.HeaderReason),
		Subject:  header(h, router.HeaderSubject),
		Event:    e,
		Header:   h,
	}
	if dl.Consumer == "" {
		return DeadLetter{}, fmt.Errorf("dead letter seq=%d: missing %s header", seq, router.HeaderConsumer)
	}
	if v := header(h, router.HeaderAttempts); v != "" {
		if dl.Attempts, err = strconv.Atoi(v); err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter seq=%d: %s %q: %w", seq, router.HeaderAttempts, v, err)
		}
	}
	if v := header(h, router.HeaderStreamSeq); v != "" {
		if dl.StreamSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter seq=%d: %s %q: %w", seq, router.HeaderStreamSeq, v, err)
		}
	}
	if v := header(h, HeaderDeadAt); v != "" {
		if dl.DeadAt, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter seq=%d: %s %q: %w", seq, HeaderDeadAt, v, err)
		}
	}
	return dl, nil
}

// header returns the first value of key as written (NATS header names are
// case-sensitive; no canonicalisation).
func header(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// DeadLetterMsg builds the ENMESHED_DLQ copy of event e that consumer gave
// up on: subject <prefix>-dlq.<consumer>.<namespace>, the event's body and
// headers (router.Event.Header) plus eventmesh-consumer, -reason, -attempts,
// -subject (subject: the event's subject in ENMESHED), -stream-seq,
// -dead-at, and Nats-Msg-Id dlq:<consumer>:<streamSeq>, so that a second
// copy of the same dead letter (a crash, two catchers) is dropped by the
// stream. The reason is made one line and cut to MaxReasonBytes.
func DeadLetterMsg(s router.Subjects, consumer string, e router.Event, reason string, attempts int, subject string, streamSeq uint64, deadAt time.Time) *nats.Msg {
	h := e.Header()
	h[router.HeaderConsumer] = []string{consumer}
	h[router.HeaderReason] = []string{oneLine(reason, MaxReasonBytes)}
	h[router.HeaderAttempts] = []string{strconv.Itoa(attempts)}
	h[router.HeaderSubject] = []string{subject}
	h[router.HeaderStreamSeq] = []string{strconv.FormatUint(streamSeq, 10)}
	h[HeaderDeadAt] = []string{deadAt.UTC().Format(time.RFC3339Nano)}
	h[router.HeaderMsgID] = []string{router.DLQMsgID(consumer, streamSeq)}
	return &nats.Msg{Subject: s.DLQ(consumer, e.Namespace), Header: h, Data: e.Data}
}

// oneLine makes s fit a header value: line breaks (which would end the
// header) become spaces, and it is cut to at most limit bytes on a rune
// boundary, marked with "…".
func oneLine(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) <= limit {
		return s
	}
	const ellipsis = "…"
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// ListDeadLetters returns the dead letters of consumer ("" = every
// consumer) stored since since (zero = all), in stream order. It reads
// ENMESHED_DLQ with an ephemeral ordered consumer and stops at the last
// sequence present when it started, so entries written meanwhile do not
// keep it going.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, s router.Subjects, consumer string, since time.Time) ([]DeadLetter, error) {
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
	out := make([]DeadLetter, 0, min(pending, 1024))
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
		dl, err := DeadLetterFromMsg(seq, m.Headers(), m.Data())
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
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (DeadLetter, error) {
	st, err := js.Stream(ctx, streams.DLQ)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dlq get seq=%d: stream %s: %w", seq, streams.DLQ, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dlq get seq=%d: %w", seq, err)
	}
	return DeadLetterFromMsg(seq, m.Header, m.Data)
}

// ReplayDeadLetters publishes each dead letter's event to ENMESHED on
// <prefix>-replay.<consumer>.<namespace>, which reaches that consumer only,
// with the event's headers (ce-id kept, so receivers deduplicate),
// eventmesh-origin replay, and a Nats-Msg-Id of its own
// (router.ReplayMsgID with now()) so the stream's duplicate window does not
// swallow it. After the stream acknowledged a replay, the entry is deleted
// from ENMESHED_DLQ, so what is left there is what is still dead. It stops at
// the first failure and returns how many were replayed: dls[:n].
func ReplayDeadLetters(ctx context.Context, js jetstream.JetStream, s router.Subjects, dls []DeadLetter, now func() time.Time) (int, error) {
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

func replay(ctx context.Context, js jetstream.Publisher, dlq jetstream.Stream, s router.Subjects, dl DeadLetter, at time.Time) error {
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
