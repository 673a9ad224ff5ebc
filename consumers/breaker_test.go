package consumers

import (
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time for the breaker.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (b *breaker) tripped() bool {
	select {
	case <-b.trip:
		return true
	default:
		return false
	}
}
func testBreaker(c *clock, threshold, minEvents int) *breaker {
	cfg := Config{BreakerThreshold: threshold, BreakerFailureRatio: 0.5, BreakerMinEvents: minEvents, BreakerWindow: time.Minute}
	return newBreaker(cfg, Options{}, c.now)
}

// fail fails the events at stream sequences from to to, once each.
func fail(b *breaker, from, to uint64) {
	for seq := from; seq <= to; seq++ {
		b.failed(seq)
	}
}

// deliver delivers the events at stream sequences from to to.
func deliver(b *breaker, from, to uint64) {
	for seq := from; seq <= to; seq++ {
		b.succeeded(seq)
	}
}

// Retries of one event count once: however often a few events fail, the
// breaker stays closed while fewer than the minimum of distinct events
// were attempted.
func TestBreakerCountsDistinctEvents(t *testing.T) {
	c := newClock()
	b := testBreaker(c, 5, 20)
	for range 50 {
		for seq := uint64(1); seq <= 6; seq++ {
			b.failed(seq)
			c.advance(10 * time.Millisecond)
		}
	}
	if b.open() {
		t.Fatal("open on six distinct events failing 300 times")
	}
	if events, failed := b.counts(); events != 6 || failed != 6 {
		t.Errorf("window: %d events, %d failed; want 6, 6", events, failed)
	}
	// Fourteen more failing events make twenty: it opens.
	fail(b, 7, 19)
	if b.open() {
		t.Fatal("open on 19 distinct events")
	}
	b.failed(20)
	if !b.open() || !b.tripped() {
		t.Fatal("closed on 20 distinct failed events")
	}
	if open, since := b.state(); !open || !since.Equal(c.t) {
		t.Errorf("state = %v since %v, want open since %v", open, since, c.t)
	}
}

// The ratio: an event counts as failed when its last attempt in the window
// failed; delivered events make up the rest.
func TestBreakerFailureRatio(t *testing.T) {
	c := newClock()
	b := testBreaker(c, 5, 20)
	deliver(b, 1, 30) // 30 delivered
	fail(b, 31, 59)   // 29 failed: 29/59 < 0.5
	if b.open() {
		t.Fatal("open at 29 of 59 failed")
	}
	b.failed(60) // 30/60
	if !b.open() {
		t.Fatal("closed at 30 of 60 failed, ratio 0.5")
	}

	// A failed event delivered later counts as delivered, once.
	b = testBreaker(c, 1, 20)
	for seq := uint64(1); seq <= 19; seq++ {
		b.failed(seq)
		b.succeeded(seq)
	}
	if events, failed := b.counts(); events != 19 || failed != 0 {
		t.Errorf("window: %d events, %d failed; want 19, 0", events, failed)
	}
	fail(b, 20, 37)
	if b.open() {
		t.Fatal("open at 18 of 37 failed")
	}
	b.failed(38)
	if !b.open() {
		t.Fatal("closed at 19 of 38 failed")
	}
}

// BREAKER_THRESHOLD is the shortest run of consecutive failed attempts
// that may open it: a success ends the run.
func TestBreakerThreshold(t *testing.T) {
	c := newClock()
	b := testBreaker(c, 5, 4)
	fail(b, 1, 4)
	if b.open() {
		t.Fatal("open after a run of 4 with threshold 5")
	}
	b.succeeded(100)
	fail(b, 5, 8)
	if b.open() {
		t.Fatal("open after a success and a run of 4")
	}
	b.failed(9) // 8 of 9 failed, a run of 5
	if !b.open() {
		t.Fatal("closed after a run of 5 with 8 of 9 failed")
	}
	// 0 never opens.
	b = testBreaker(c, 0, 1)
	fail(b, 1, 100)
	if b.open() {
		t.Fatal("threshold 0 opened")
	}
}

// What happened before the window is forgotten.
func TestBreakerWindowExpires(t *testing.T) {
	c := newClock()
	b := testBreaker(c, 5, 20)
	fail(b, 1, 19)
	c.advance(61 * time.Second)
	b.failed(20)
	if b.open() {
		t.Fatal("open on failures from before the window")
	}
	if events, failed := b.counts(); events != 1 || failed != 1 {
		t.Errorf("window: %d events, %d failed; want 1, 1", events, failed)
	}
	// Deliveries expire too: 30 delivered a minute ago do not dilute
	// today's failures.
	deliver(b, 100, 129)
	c.advance(61 * time.Second)
	fail(b, 21, 39)
	if events, failed := b.counts(); events != 19 || failed != 19 {
		t.Errorf("window: %d events, %d failed; want 19, 19", events, failed)
	}
	// An event failing again stays in the window from its last failure.
	c.advance(30 * time.Second)
	b.failed(21)
	c.advance(31 * time.Second)
	b.failed(40)
	if events, failed := b.counts(); events != 2 || failed != 2 {
		t.Errorf("window: %d events, %d failed; want 2 (21 again, 40)", events, failed)
	}
	c.advance(30 * time.Second) // a minute after 21 failed again
	if events, failed := b.counts(); events != 1 || failed != 1 || b.known(21) {
		t.Errorf("window: %d events, %d failed (21 known: %v); want 1, 1 (40)", events, failed, b.known(21))
	}
}

// Open, only the probe's success closes it, and it empties the window: the
// failures before it no longer count.
func TestBreakerProbeEmptiesWindow(t *testing.T) {
	c := newClock()
	b := testBreaker(c, 5, 20)
	fail(b, 1, 20)
	if !b.open() {
		t.Fatal("closed on 20 failed")
	}
	c.advance(time.Second)
	b.succeeded(3) // in flight when it opened: not the probe
	if !b.open() {
		t.Fatal("closed by an event that was not the probe")
	}
	b.probe(21)
	b.succeeded(21)
	if b.open() {
		t.Fatal("still open after the probe succeeded")
	}
	if open, since := b.state(); open || !since.Equal(c.t) {
		t.Errorf("state = %v since %v, want closed since %v", open, since, c.t)
	}
	if events, failed := b.counts(); events != 0 || failed != 0 {
		t.Errorf("window after the probe: %d events, %d failed; want empty", events, failed)
	}
	if b.known(1) {
		t.Error("event 1 still known failing after the window was emptied")
	}
	// It opens again only on a fresh 20.
	fail(b, 1, 19)
	if b.open() {
		t.Fatal("open on 19 after the window was emptied")
	}
}

// Stale entries of events failing again and again do not pile up.
func TestBreakerBounded(t *testing.T) {
	c := newClock()
	b := testBreaker(c, 5, 1000)
	for range 10000 {
		for seq := uint64(1); seq <= 3; seq++ {
			b.failed(seq)
			c.advance(time.Millisecond)
		}
	}
	if n := len(b.failures); n > 2*3+64+1 {
		t.Errorf("%d failure entries for 3 failing events", n)
	}
}

// The breaker's book-keeping runs for every settled attempt: its cost per
// delivery and per failure.
func BenchmarkBreaker(b *testing.B) {
	cfg := Config{BreakerThreshold: 5, BreakerFailureRatio: 0.5, BreakerMinEvents: 20, BreakerWindow: time.Minute}
	br := newBreaker(cfg, Options{}, time.Now)
	var seq uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := atomic.AddUint64(&seq, 1)
			if n%10 < 3 {
				br.failed(n)
			}
			br.succeeded(n)
		}
	})
}
