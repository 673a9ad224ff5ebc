package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/eventmesh/eventmesh/connector"
)

// listing serves GET /Messages as {"result": [...]} of the messages
// item(0..n-1) writes, and counts the requests.
type listing struct {
	*httptest.Server
	hits atomic.Int32
}

func newListing(t *testing.T, n int, item func(w io.Writer, i int)) *listing {
	l := &listing{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result": [`)
		for i := range n {
			if i > 0 {
				io.WriteString(w, ",\n")
			}
			item(w, i)
		}
		io.WriteString(w, "]}")
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *listing) client(t *testing.T) *Client { return clientOf(t, l.URL, 0) }

// clientOf is a client of the Connector at url with CONNECTOR_TIMEOUT
// timeout (0: the default).
func clientOf(t *testing.T, url string, timeout time.Duration) *Client {
	c := validConfig()
	c.URL = url
	if timeout > 0 {
		c.Timeout = timeout
	}
	return newClient(t, c)
}

// messageJSON writes a message whose subject is pad bytes long.
func messageJSON(w io.Writer, i, pad int) {
	fmt.Fprintf(w, `{"id":"MSG%017d","isOwn":false,"content":{"@type":"Mail","subject":"%s"}}`, i, strings.Repeat("x", pad))
}

// A listing larger than the whole answer's bound (64 MiB, which ended
// every round of the sync poller on a large Connector) is read in full:
// only each listed object is bounded.
func TestListingLargerThanMaxBody(t *testing.T) {
	const n, pad = 70, 1 << 20 // 70 MiB
	l := newListing(t, n, func(w io.Writer, i int) { messageJSON(w, i, pad) })
	ms, err := clientOf(t, l.URL, time.Minute).Messages(context.Background()) // -race decodes slowly
	if err != nil || len(ms) != n {
		t.Fatalf("Messages of a 70 MiB listing: %d messages, %v", len(ms), err)
	}
	if ms[n-1].ID != fmt.Sprintf("MSG%017d", n-1) {
		t.Errorf("last message %q", ms[n-1].ID)
	}
}

// The same with the bound lowered: many small objects pass, one object
// over the bound is refused with an error that says so, and no retry.
func TestListingBoundsEachObject(t *testing.T) {
	l := newListing(t, 1000, func(w io.Writer, i int) { messageJSON(w, i, 100) })
	cl := l.client(t)
	SetMaxBody(cl, 1000)
	n := 0
	if err := cl.EachMessage(context.Background(), func(Message) error { n++; return nil }); err != nil || n != 1000 {
		t.Fatalf("EachMessage of 1000 small messages under a 1000-byte bound: %d, %v", n, err)
	}

	big := newListing(t, 3, func(w io.Writer, i int) { messageJSON(w, i, 100+i*1000) })
	cl = big.client(t)
	SetMaxBody(cl, 1000)
	n = 0
	err := cl.EachMessage(context.Background(), func(Message) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "a listed object exceeds 1000 bytes") || n != 1 {
		t.Fatalf("a 1.1 kB object under a 1000-byte bound: %d handed over, %v", n, err)
	}
	if h := big.hits.Load(); h != 1 {
		t.Errorf("%d attempts, want 1", h)
	}
}

// EachMessage hands each message over as it decodes the answer, before the
// answer ends: its memory does not depend on the listing's size. The
// server writes the first message, then waits for the callback to have
// it before it writes the rest.
func TestEachMessageStreams(t *testing.T) {
	got := make(chan struct{})
	var early atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result": [`)
		messageJSON(w, 0, 10)
		io.WriteString(w, ",")
		w.(http.Flusher).Flush()
		select {
		case <-got:
			early.Store(true)
		case <-time.After(3 * time.Second):
		}
		messageJSON(w, 1, 10)
		io.WriteString(w, "]}")
	}))
	defer srv.Close()
	var ids []string
	err := clientOf(t, srv.URL, 0).EachMessage(context.Background(), func(m Message) error {
		if len(ids) == 0 {
			close(got)
		}
		ids = append(ids, m.ID)
		return nil
	})
	if err != nil || len(ids) != 2 {
		t.Fatalf("EachMessage: %v, %v", ids, err)
	}
	if !early.Load() {
		t.Error("the first message was handed over only after the whole answer was read")
	}
}

// A callback's error ends the listing and comes back as it is, without a
// retry; the time callbacks take does not count against
// CONNECTOR_TIMEOUT.
func TestEachMessageCallback(t *testing.T) {
	l := newListing(t, 5, func(w io.Writer, i int) { messageJSON(w, i, 10) })
	stop := errors.New("stop")
	n := 0
	err := l.client(t).EachMessage(context.Background(), func(Message) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 || l.hits.Load() != 1 {
		t.Fatalf("callback error: %v after %d messages, %d attempts; want stop after 2, 1 attempt", err, n, l.hits.Load())
	}

	n = 0
	err = clientOf(t, l.URL, 200*time.Millisecond).EachMessage(context.Background(), func(Message) error {
		n++
		time.Sleep(100 * time.Millisecond)
		return nil
	})
	if err != nil || n != 5 {
		t.Fatalf("callbacks of 500ms in all under a 200ms CONNECTOR_TIMEOUT: %d, %v", n, err)
	}
}

// A "result" of null lists nothing; an answer without "result" or with
// something else than a list is an error.
func TestEachMessageEnvelope(t *testing.T) {
	for body, want := range map[string]string{
		`{"result": null}`:           "",
		`{"other": 1, "result": []}`: "",
		`{"other": 1}`:               `the answer has no "result"`,
		`{"result": {}}`:             "want a list",
		`[]`:                         "not the JSON envelope",
		`{"result": [1]}`:            "decode the result",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
		n := 0
		err := clientOf(t, srv.URL, 0).EachMessage(context.Background(), func(Message) error { n++; return nil })
		srv.Close()
		if want == "" && (err != nil || n != 0) || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %d messages, %v; want error %q", body, n, err, want)
		}
	}
}

// A listing whose connection breaks after the first messages is tried
// again from the start: EachMessage may hand a message over twice,
// Messages lists each once.
func TestListingRetriedAfterBreak(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := hits.Add(1) == 1
		if first { // the answer breaks off before this length
			w.Header().Set("Content-Length", "100000")
		}
		io.WriteString(w, `{"result": [`)
		for i := range 3 {
			if i > 0 {
				io.WriteString(w, ",")
			}
			messageJSON(w, i, 10)
			if first && i == 1 {
				return
			}
		}
		io.WriteString(w, "]}")
	}))
	defer srv.Close()
	n := 0
	if err := clientOf(t, srv.URL, 0).EachMessage(context.Background(), func(Message) error { n++; return nil }); err != nil || n != 5 {
		t.Fatalf("EachMessage: %d handed over (want 2 + 3), %v", n, err)
	}
	hits.Store(0)
	ms, err := clientOf(t, srv.URL, 0).Messages(context.Background())
	if err != nil || len(ms) != 3 || hits.Load() != 2 {
		t.Fatalf("Messages: %d messages in %d attempts, %v; want 3 in 2", len(ms), hits.Load(), err)
	}
}
