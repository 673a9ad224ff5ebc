package connectortest

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/connector"
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
func newDouble(t *testing.T) *Server {
	t.Helper()
	d, err := NewServer(testKey, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// newClient returns a client of c.
func newClient(t *testing.T, c connector.Config) *connector.Client {
	t.Helper()
	cl, err := connector.New(c, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// call makes a raw request to the double with the key in X-API-KEY
// (none when key is empty) and returns status, body and headers.
func call(t *testing.T, d *Server, method, path, key string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, d.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-KEY", key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body, resp.Header
}

var errorIDPattern = regexp.MustCompile(`^ERR[A-Z2-9]{17}$`)

// wantEnvelope checks that body is the Connector's error envelope with
// code and every field set.
func wantEnvelope(t *testing.T, body []byte, code string) {
	t.Helper()
	var env struct {
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		t.Fatalf("not an error envelope: %s (%v)", body, err)
	}
	e := env.Error
	if e["code"] != code {
		t.Errorf("code %q, want %q (body %s)", e["code"], code, body)
	}
	if !errorIDPattern.MatchString(e["id"]) {
		t.Errorf("id %q is not ERR and 17 characters", e["id"])
	}
	if _, err := time.Parse(time.RFC3339, e["time"]); err != nil {
		t.Errorf("time %q: %v", e["time"], err)
	}
	if e["message"] == "" || e["docs"] == "" {
		t.Errorf("message or docs empty: %s", body)
	}
}

// receiver is a webhook endpoint that records what it gets.
type receiver struct {
	srv    *httptest.Server
	status atomic.Int32 // answer; 0: 200
	got    chan struct{}

	mu   sync.Mutex
	reqs []received
}

type received struct {
	method string
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{got: make(chan struct{}, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{r.Method, r.URL.Path, r.Header.Clone(), body})
		rc.mu.Unlock()
		if s := rc.status.Load(); s != 0 {
			if s >= 300 && s < 400 {
				w.Header().Set("Location", "/elsewhere")
			}
			w.WriteHeader(int(s))
		}
		rc.got <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// byTrigger returns the bodies received per trigger (from the path).
func (rc *receiver) byTrigger() map[string][][]byte {
	m := map[string][][]byte{}
	for _, r := range rc.all() {
		m[r.path] = append(m[r.path], r.body)
	}
	return m
}
