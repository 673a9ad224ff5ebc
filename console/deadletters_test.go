package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
)

// seedDeadLetter stores a dead letter of testDurable and returns its
// sequence in ENMESHED_DLQ.
func (f *fixture) seedDeadLetter(t *testing.T, i int) (uint64, router.Event) {
	t.Helper()
	e := router.Event{ID: fmt.Sprintf("%032x", 0xd0+i), Namespace: "transport.messageReceived", Source: "enmeshed-connector",
		Time: time.Now().UTC(), Origin: router.OriginWebhook, Data: []byte(`{"id":"MSGdead"}`)}
	m := consumers.DeadLetterMsg(f.s, testDurable, e, "receiver answered 400", 1, f.s.Event(e.Namespace), uint64(i+1), time.Now())
	ack, err := f.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence, e
}

// The dead-letter pages: a list per consumer, one shown; a selected one
// replayed (to its consumer's replay subject, and gone from the DLQ);
// purge only with the confirmation.
func TestDeadLettersReplayAndPurge(t *testing.T) {
	f := newFixture(t, Config{}, true)
	ctx := context.Background()
	seq1, e1 := f.seedDeadLetter(t, 1)
	seq2, _ := f.seedDeadLetter(t, 2)
	cl := f.client(t)
	code, body, _ := f.get(t, cl, "/dlq?consumer="+testDurable)
	if code != 200 || !strings.Contains(body, e1.ID) || !strings.Contains(body, "receiver answered 400") {
		t.Fatalf("list: %d\n%s", code, body)
	}
	token := csrf(t, body)
	if code, body, _ := f.get(t, cl, fmt.Sprintf("/dlq/%d", seq1)); code != 200 || !strings.Contains(body, "MSGdead") {
		t.Fatalf("show: %d\n%s", code, body)
	}
	if code, body := f.post(t, cl, "/dlq/replay", url.Values{"csrf": {token}, "seq": {fmt.Sprint(seq1)}}, f.srv.URL); code != http.StatusSeeOther {
		t.Fatalf("replay: %d\n%s", code, body)
	}
	st, err := f.js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, f.s.Replay(testDurable, e1.Namespace))
	if err != nil || m.Header.Get(router.HeaderID) != e1.ID {
		t.Fatalf("no replay of %s on %s: %v", e1.ID, f.s.Replay(testDurable, e1.Namespace), err)
	}
	if code, _, _ := f.get(t, cl, fmt.Sprintf("/dlq/%d", seq1)); code != http.StatusNotFound {
		t.Errorf("the replayed dead letter is still there: %d", code)
	}
	if code, _ := f.post(t, cl, "/dlq/purge", url.Values{"csrf": {token}, "consumer": {testDurable}}, f.srv.URL); code != http.StatusBadRequest {
		t.Errorf("purge without confirmation: %d", code)
	}
	if code, _, _ := f.get(t, cl, fmt.Sprintf("/dlq/%d", seq2)); code != http.StatusOK {
		t.Fatalf("an unconfirmed purge removed dead letter %d", seq2)
	}
	if code, _ := f.post(t, cl, "/dlq/purge", url.Values{"csrf": {token}, "consumer": {testDurable}, "confirm": {"yes"}}, f.srv.URL); code != http.StatusSeeOther {
		t.Fatalf("purge: %d", code)
	}
	if code, body, _ := f.get(t, cl, "/dlq"); !strings.Contains(body, `id="no-dead-letters"`) {
		t.Errorf("after the purge: %d\n%s", code, body)
	}
	if !strings.Contains(f.logs.String(), "action=\"purge dead letters\"") || !strings.Contains(f.logs.String(), "action=\"replay dead letters\"") {
		t.Errorf("the actions are not logged:\n%s", f.logs)
	}
}
