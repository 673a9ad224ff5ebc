package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// marshalHeaders writes what json.Marshal writes, on the direct path and
// on the fallback alike: the headers column of rows written before and
// after must compare equal.
func TestMarshalHeadersAsJSON(t *testing.T) {
	cases := []map[string][]string{
		nil,
		{},
		{"ce-id": {"7f3a"}, "ce-type": {"transport.messageReceived"}, "ce-source": {"enmeshed-connector"},
			"ce-time": {"2026-12-02T13:19:16.123456789Z"}, "ce-specversion": {"1.0"}, "ce-datacontenttype": {"application/json"},
			"eventmesh-origin": {"webhook"}, "traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		{"multi": {"a", "b", ""}, "empty": {}, "nil": nil},
		{"x-correlation-id": {`quote " inside`}},
		{"k": {`back\slash`}},
		{"html": {"<script>&</script>"}},
		{"ctl": {"tab\there", "nl\n"}},
		{"utf8": {"Grüße", "\u2028"}},
		{"bad": {"\xff\xfe"}},
		{"ké": {"v"}},
		{"del": {"\x7f"}},
	}
	// Random headers over an alphabet with every class of byte the direct
	// path must refuse or accept.
	alphabet := []byte("aZ09-_.: ~\"\\<>&\x00\x1f\x7f\xc3\xa9\xff/+=")
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, r.IntN(6))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(r.IntN(26))
			}
		}
		return string(b)
	}
	for range 2000 {
		h := map[string][]string{}
		for range r.IntN(12) {
			var vs []string
			if r.IntN(8) > 0 {
				vs = []string{}
				for range r.IntN(3) {
					vs = append(vs, str())
				}
			}
			h[str()] = vs
		}
		cases = append(cases, h)
	}
	direct := 0
	for _, h := range cases {
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalHeaders(h)
		if err != nil {
			t.Fatalf("%q: %v", h, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", h, got, want)
		}
		if _, ok := appendPlainHeaders(nil, h); ok {
			direct++
		}
	}
	if direct < len(cases)/10 || direct == len(cases) {
		t.Errorf("%d of %d cases took the direct path: the test should exercise both paths", direct, len(cases))
	}
}

// An event's headers as the mesh writes them (router.Event.Header) take
// the direct path.
func TestMarshalHeadersDirectForEvents(t *testing.T) {
	e := router.Event{ID: "e23051b9952c6b32f8d68c59a53fc3a6", Namespace: "consumption.relationshipEvent.REL123", Source: "enmeshed-connector",
		Time: time.Date(2026, 12, 2, 13, 19, 16, 123456789, time.UTC), Origin: router.OriginWebhook, CorrelationID: "corr-1",
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	h := e.Header()
	if _, ok := appendPlainHeaders(nil, h); !ok {
		t.Errorf("%q: not on the direct path", h)
	}
}
