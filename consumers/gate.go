package consumers

import "sync"

// Gate holds a runtime's fetching while something its handler needs is
// missing (the bridge's broker connection or destination). While the gate
// is closed the runtime fetches nothing, and events fetched before it
// closed are handed back unhandled, as while the circuit breaker is open.
// Whoever owns the gate opens and closes it; a new Gate is open.
type Gate struct {
	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced at every change
}

// NewGate returns an open gate.
func NewGate() *Gate { return &Gate{changed: make(chan struct{})} }

// Open lets the runtime fetch.
func (g *Gate) Open() { g.set(false) }

// Close holds fetching until Open.
func (g *Gate) Close() { g.set(true) }

// IsOpen reports whether the runtime may fetch.
func (g *Gate) IsOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.closed
}

// state returns whether the gate is open and a channel closed at its next
// change.
func (g *Gate) state() (open bool, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.closed, g.changed
}

func (g *Gate) set(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == closed {
		return
	}
	g.closed = closed
	close(g.changed)
	g.changed = make(chan struct{})
}
