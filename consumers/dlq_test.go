package consumers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go"
)

func TestDLQMsgHeaders(t *testing.T) {
	s := router.MustSubjects("enmeshed")
	e := router.Event{
		ID:            fmt.Sprintf("%032x", 2),
		Namespace:     "transport.messageReceived",
		Source:        router.DefaultSource,
		Time:          time.Date(2025, 3, 1, 12, 0, 1, 123456789, time.UTC),
		Origin:        router.OriginWebhook,
		Data:          []byte(`{"id":"MSG1","content":{"@type":"Mail"}}`),
		CorrelationID: "corr-1",
		Traceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	at := time.Date(2025, 3, 2, 8, 30, 0, 5, time.FixedZone("CET", 3600))
	m := DeadLetterMsg(s, "webhook-1a2b3c4d", e, "boom\r\nsecond line", 5, "enmeshed.transport.messageReceived", 42, at)
	if m.Subject != "enmeshed-dlq.webhook-1a2b3c4d.transport.messageReceived" || string(m.Data) != string(e.Data) {
		t.Errorf("subject %q body %q", m.Subject, m.Data)
	}
	want := map[string]string{
		"ce-specversion": "1.0", "ce-id": e.ID, "ce-type": "transport.messageReceived", "ce-source": router.DefaultSource,
		"ce-time": "2025-03-01T12:00:01.123456789Z", "ce-datacontenttype": "application/json", "eventmesh-origin": "webhook",
		"x-correlation-id": "corr-1", "traceparent": e.Traceparent,
		"eventmesh-consumer": "webhook-1a2b3c4d", "eventmesh-reason": "boom  second line", "eventmesh-attempts": "5",
		"eventmesh-subject": "enmeshed.transport.messageReceived", "eventmesh-stream-seq": "42",
		"eventmesh-dead-at": "2025-03-02T07:30:00.000000005Z", "Nats-Msg-Id": "dlq:webhook-1a2b3c4d:42",
	}
	for k, v := range want {
		if got := m.Header[k]; len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(m.Header) != len(want) {
		t.Errorf("%d headers, want %d: %v", len(m.Header), len(want), m.Header)
	}

	long := strings.Repeat("ä", MaxReasonBytes) // 2 bytes each
	m = DeadLetterMsg(s, "c", e, long, 1, "x", 1, at)
	r := m.Header[router.HeaderReason][0]
	if len(r) > MaxReasonBytes || !strings.HasSuffix(r, "…") || !strings.HasPrefix(r, "ää") || strings.ContainsRune(r, '\uFFFD') {
		t.Errorf("long reason cut to %d bytes: %q…", len(r), r[:20])
	}

	if _, err := DeadLetterFromMsg(1, nats.Header{"ce-id": {"x"}, "ce-type": {"a.b"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "eventmesh-consumer") {
		t.Errorf("missing consumer header: %v", err)
	}
	h := DeadLetterMsg(s, "c", e, "r", 1, "x", 1, at).Header
	h[router.HeaderAttempts] = []string{"many"}
	if _, err := DeadLetterFromMsg(7, h, nil); err == nil || !strings.Contains(err.Error(), "seq=7") {
		t.Errorf("bad attempts: %v", err)
	}
}

// `dlq ls --json` prints JSON in UTF-8 even for an event whose data is JSON
// but for invalid UTF-8 (stored before ingest refused it): such data goes to
// data_base64 and comes back byte for byte.
func TestDeadLetterJSONWithInvalidUTF8Data(t *testing.T) {
	for _, data := range [][]byte{[]byte(`{"subject":"caf` + "\xe9" + `"}`), []byte(`{"subject":"café"}`)} {
		dl := DeadLetter{Seq: 1, Consumer: "webhook-1", Event: router.Event{ID: fmt.Sprintf("%032x", 1), Namespace: "a.b", Data: data}}
		b, err := json.Marshal(dl)
		if err != nil || !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("%q: %v, not JSON in UTF-8: %q", data, err, b)
		}
		if inline := strings.Contains(string(b), `"data":{`); inline != utf8.Valid(data) {
			t.Errorf("%q: data inline %v: %s", data, inline, b)
		}
		var back DeadLetter
		if err := json.Unmarshal(b, &back); err != nil || string(back.Event.Data) != string(data) {
			t.Errorf("%q: back %q, %v", data, back.Event.Data, err)
		}
	}
}
