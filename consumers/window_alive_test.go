package consumers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// signalCounter is a message that counts its in-progress signals.
type signalCounter struct {
	jetstream.Msg
	signals atomic.Int64
}

func (m *signalCounter) InProgress() error { m.signals.Add(1); return nil }

// Once its handler returned, an event is no longer signalled in progress
// by the window, although its worker still holds it: what follows may be
// a nak with a delay, and a signal after it would make the server count
// the delay from the signal (a retry due in ten minutes would come after
// AckWait). Before that, the ticker signals it.
func TestWindowStopsSignallingWhenHandled(t *testing.T) {
	w := newWindow(1, 10)
	m := &signalCounter{}
	w.enter(m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.keepAlive(ctx, 10*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for m.signals.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a held event was not signalled within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	w.done(m) // the handler returned
	after := m.signals.Load()
	time.Sleep(100 * time.Millisecond) // ten ticks: an absence can only be shown by waiting
	if n := m.signals.Load(); n != after {
		t.Errorf("signalled %d more times after its handler returned", n-after)
	}
	if !w.holdsRoom(1) {
		t.Error("the event left the window's room before its worker was done")
	}
	w.leave(m)
	if !w.holdsRoom(0) {
		t.Error("the window's room was not freed by leave")
	}
}

// holdsRoom reports whether n events take up the window's room.
func (w *window) holdsRoom(n int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held == n
}
