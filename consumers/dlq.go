package consumers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go"
)

// MaxReasonBytes bounds eventmesh-reason: a reason often quotes a
// receiver's answer, and headers count against the server's max payload.
const MaxReasonBytes = 1024

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
	if router.ValidJSON(e.Data) {
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
	if v := header(h, router.HeaderDeadAt); v != "" {
		if dl.DeadAt, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter seq=%d: %s %q: %w", seq, router.HeaderDeadAt, v, err)
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
	h[router.HeaderDeadAt] = []string{deadAt.UTC().Format(time.RFC3339Nano)}
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
	return router.Truncate(s, limit-len(ellipsis)) + ellipsis
}
