// Package natstest starts real JetStream servers for tests: an embedded
// nats-server on a free loopback port with its store in a temporary
// directory, reached over TCP like any external server. Import it from
// _test.go files only.
package natstest

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config returns an embedded-server config for a test: a free port, a
// temporary store, fsync on every write (the product's default).
func Config(t testing.TB) embedded.Config {
	return embedded.Config{
		Embedded:    true,
		Listen:      "127.0.0.1:0",
		Sync:        "always",
		DataDir:     t.TempDir(),
		MaxStore:    4 << 30, // a reservation limit: room for every stream of the mesh
		MaxMemory:   64 << 20,
		MaxPayload:  1 << 20,
		StoreCipher: "chacha",
	}
}

// Start starts a server with Config(t), changed by opts, and shuts it down
// when the test ends.
func Start(t testing.TB, opts ...func(*embedded.Config)) *embedded.Server {
	t.Helper()
	c := Config(t)
	for _, o := range opts {
		o(&c)
	}
	return StartWith(t, c)
}

// StartWith starts a server with c and shuts it down when the test ends
// (Shutdown may also be called earlier, e.g. to restart on the same store).
func StartWith(t testing.TB, c embedded.Config) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(c, Logger(t))
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect connects to url over TCP and closes the connection at the end.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns the JetStream API on nc.
func JetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// WaitFor polls cond every 10ms until it holds, failing the test with msg
// after timeout. Use it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Logger returns a logger for tests: quiet unless EVENTMESH_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("EVENTMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// SyncBuffer is a log sink a test reads while the code under test writes.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
