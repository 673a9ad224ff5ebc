package consumers

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMarshalOutcomesAsJSON: marshalOutcomes writes what json.Marshal
// writes, byte for byte: fixed records (errors with quotes, control
// characters, HTML and invalid UTF-8, times in other zones and with and
// without fractions, an empty batch) and 2,000 random batches.
func TestMarshalOutcomesAsJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 4, 5, 123_456_789, time.UTC)
	cet := time.FixedZone("CET", 3600)
	batches := [][]Outcome{
		{},
		{{Consumer: "webhook", EventID: "id-1", Result: ResultDelivered, Attempt: 1, Time: at, Subject: "enmeshed.transport.messageReceived", StreamSeq: 42}},
		{{Consumer: "bridge-x", EventID: "e\"vil<&>", Result: ResultRetried, Attempt: 3, Error: "webhook: receiver answered 500: \"oops\"\n\t\x01\xff\u2028",
			Time: at.In(cet).Truncate(time.Second), Subject: "s", StreamSeq: 1 << 63},
			{Consumer: "c", EventID: "", Result: ResultDeadLettered, Attempt: 0, Time: time.Time{}, Subject: "", StreamSeq: 0}},
	}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune("aZ09._-: \"\\<>&\t\n\x00\x7fü\u2028€")
	str := func() string {
		rs := make([]rune, r.IntN(12))
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		s := string(rs)
		if r.IntN(10) == 0 {
			s += "\xff"
		}
		return s
	}
	for range 2000 {
		batch := make([]Outcome, r.IntN(4)+1)
		for i := range batch {
			tm := time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2)))
			if r.IntN(2) == 0 {
				tm = tm.In(cet)
			}
			batch[i] = Outcome{Consumer: str(), EventID: str(), Result: str(), Attempt: r.IntN(100), Time: tm,
				Subject: str(), StreamSeq: r.Uint64()}
			if r.IntN(2) == 0 {
				batch[i].Error = str()
			}
		}
		batches = append(batches, batch)
	}
	for _, batch := range batches {
		want, err := json.Marshal(batch)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalOutcomes(batch)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("marshalOutcomes:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
	// A time json.Marshal refuses is refused here too.
	if _, err := marshalOutcomes([]Outcome{{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}); err == nil {
		t.Error("a year past 9999 marshalled")
	}
}
