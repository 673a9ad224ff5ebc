package router

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Fixed header values.
const (
	SpecVersion     = "1.0"
	DataContentType = "application/json"
	// DefaultSource is ce-source when CONNECTOR_ID is not set.
	DefaultSource = "enmeshed-connector"
)

// Origin says how an event entered the mesh (header eventmesh-origin).
type Origin string

// The origins of an event.
const (
	OriginWebhook Origin = "webhook"
	OriginSync    Origin = "sync"
	OriginSQL     Origin = "sql"
	OriginReplay  Origin = "replay"
)

// Event is one event in the mesh: what the Connector sent plus what the mesh
// knows about it. Data holds the Connector's data JSON exactly as received,
// and is nil when the Connector sent no data key.
type Event struct {
	ID            string
	Namespace     string
	Source        string
	Time          time.Time
	Origin        Origin
	Data          []byte
	CorrelationID string
	Traceparent   string
}

// TimeFormat is the layout of ce-time (RFC 3339 with nanoseconds, UTC).
const TimeFormat = time.RFC3339Nano

// Msg returns the NATS message that publishes e on its event subject, with
// Nats-Msg-Id = ce-id so the stream drops a second copy of the same event.
func (e Event) Msg(s Subjects) *nats.Msg {
	m := &nats.Msg{Subject: s.Event(e.Namespace), Data: e.Data, Header: e.Header()}
	m.Header[HeaderMsgID] = m.Header[HeaderID]
	return m
}

// Header returns the event's headers without Nats-Msg-Id (a replay or a
// dead-letter copy publishes the same event under an id of its own).
func (e Event) Header() nats.Header {
	// One backing array for all values: this runs for every event.
	vals := make([]string, 0, 10)
	h := make(nats.Header, 10)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(HeaderSpecVersion, SpecVersion)
	set(HeaderID, e.ID)
	set(HeaderType, e.Namespace)
	set(HeaderSource, e.Source)
	set(HeaderTime, e.Time.UTC().Format(TimeFormat))
	set(HeaderDataContentType, DataContentType)
	if e.Origin != "" {
		set(HeaderOrigin, string(e.Origin))
	}
	if e.CorrelationID != "" {
		set(HeaderCorrelationID, e.CorrelationID)
	}
	if e.Traceparent != "" {
		set(HeaderTraceparent, e.Traceparent)
	}
	return h
}

// ErrNotEvent is returned by FromMsg for a message that lacks the headers of
// an event.
var ErrNotEvent = errors.New("not an eventmesh event")

// FromMsg reads an event back from a message's headers and body. The
// namespace comes from ce-type, so replays and dead-letter copies, whose
// subjects differ, read back the same.
func FromMsg(h nats.Header, data []byte) (Event, error) {
	e := Event{
		ID:            first(h, HeaderID),
		Namespace:     first(h, HeaderType),
		Source:        first(h, HeaderSource),
		Origin:        Origin(first(h, HeaderOrigin)),
		CorrelationID: first(h, HeaderCorrelationID),
		Traceparent:   first(h, HeaderTraceparent),
	}
	if e.ID == "" || e.Namespace == "" {
		return Event{}, fmt.Errorf("%w: missing %s or %s header", ErrNotEvent, HeaderID, HeaderType)
	}
	if err := ValidateTrigger(e.Namespace); err != nil {
		return Event{}, fmt.Errorf("%w: %s: %w", ErrNotEvent, HeaderType, err)
	}
	if ts := first(h, HeaderTime); ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Event{}, fmt.Errorf("%w: %s %q: %w", ErrNotEvent, HeaderTime, ts, err)
		}
		e.Time = t
	}
	if len(data) > 0 {
		e.Data = data
	}
	return e, nil
}

// first returns the first value of key without canonicalising it (NATS
// header names are case-sensitive, nats.Header.Get would too, but a direct
// lookup states it).
func first(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// DLQMsgID is the Nats-Msg-Id of a dead-letter copy: a crash or two
// catchers (the runtime and the advisory reader) cannot double an entry.
func DLQMsgID(consumer string, streamSeq uint64) string {
	return "dlq:" + consumer + ":" + strconv.FormatUint(streamSeq, 10)
}

// ReplayMsgID is the Nats-Msg-Id of a replayed event: its own, so the
// stream's duplicate window does not drop the replay, while ce-id stays the
// event's so receivers deduplicate.
func ReplayMsgID(eventID string, now time.Time) string {
	return "replay:" + eventID + ":" + strconv.FormatInt(now.UnixNano(), 10)
}

// ReplayMsg is the message that replays e at time at: origin replay, on
// <prefix>-replay.<consumer>.<namespace> so only consumer gets it (on the
// event's own subject when consumer is ""), with a fresh Nats-Msg-Id.
func (e Event) ReplayMsg(s Subjects, consumer string, at time.Time) *nats.Msg {
	e.Origin = OriginReplay
	subject := s.Event(e.Namespace)
	if consumer != "" {
		subject = s.Replay(consumer, e.Namespace)
	}
	m := &nats.Msg{Subject: subject, Data: e.Data, Header: e.Header()}
	m.Header[HeaderMsgID] = []string{ReplayMsgID(e.ID, at)}
	return m
}
