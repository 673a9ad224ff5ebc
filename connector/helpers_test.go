package connector_test

// The tests are outside the package because they use the Connector double
// of connectortest, which imports connector; the dot import keeps them
// reading as they would inside it.

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
)

// testKey is shaped like a key the Connector accepts (30+ characters,
// digits, upper and lower case, a special character).
const testKey = "Test-Key_4fQ9zR2mX8kL1pW7vN3bT6yH"

// testLog logs to the test's output at debug level, so a failing test
// shows what the client and the double did.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newDouble starts a double that is closed when the test ends.
func newDouble(t *testing.T) *connectortest.Server {
	t.Helper()
	d, err := connectortest.NewServer(testKey, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// newClient returns a client of c with a 1ms backoff, so retries do not
// slow the tests down.
func newClient(t *testing.T, c Config, opts ...Option) *Client {
	t.Helper()
	cl, err := New(c, testLog(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	SetBackoff(cl, time.Millisecond)
	return cl
}

// counting is a RoundTripper that counts attempts and lets a test act
// after each one (e.g. bring the double back up after the first 503).
type counting struct {
	next  http.RoundTripper
	n     atomic.Int32
	after func(n int)
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	n := int(c.n.Add(1))
	if c.after != nil {
		c.after(n)
	}
	return resp, err
}

func newCounting(after func(n int)) *counting {
	return &counting{next: http.DefaultTransport.(*http.Transport).Clone(), after: after}
}

// hooks is a webhook endpoint that counts the POSTs it gets per path (the
// trigger, with a URL ending in /{{trigger}}).
type hooks struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   map[string]int
}

func newHooks(t *testing.T) *hooks {
	h := &hooks{n: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.n[r.URL.Path]++
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// count returns how many POSTs came for trigger.
func (h *hooks) count(trigger string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n["/"+trigger]
}
