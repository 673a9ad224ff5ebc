package consumers

import (
	"errors"
	"testing"
	"time"
)

// TestRetryDueOnTick: a retry's delay is lengthened so that it falls due
// on a tick (a quarter of the delay at most, rounded down to retryTicks),
// never shortened, and the retries of a jittered schedule fall due on a
// few shared ticks rather than each at its own time.
func TestRetryDueOnTick(t *testing.T) {
	base := time.Date(2026, 12, 2, 16, 0, 0, 123_456_789, time.UTC)
	for _, delay := range []time.Duration{0, time.Millisecond, 39 * time.Millisecond, 40 * time.Millisecond,
		time.Second, 1234 * time.Millisecond, 5 * time.Second, time.Minute, time.Hour} {
		for i := range 50 {
			now := base.Add(time.Duration(i) * 7_777_777)
			got := onTick(delay, now)
			tick := time.Duration(0)
			for _, t := range retryTicks {
				if t <= delay/4 {
					tick = t
				}
			}
			switch {
			case got < delay:
				t.Fatalf("onTick(%s) at %s = %s: shorter than asked", delay, now, got)
			case tick == 0 && got != delay:
				t.Fatalf("onTick(%s) = %s: a delay below 40 ms is kept", delay, got)
			case tick > 0 && now.Add(got).UnixNano()%int64(tick) != 0:
				t.Fatalf("onTick(%s) at %s = %s: due at %s, not on a %s tick", delay, now, got, now.Add(got), tick)
			case tick > 0 && got-delay >= tick:
				t.Fatalf("onTick(%s) = %s: lengthened by a tick (%s) or more", delay, got, tick)
			case got-delay > delay/4 || got-delay > 5*time.Second:
				t.Fatalf("onTick(%s) = %s: lengthened by more than a quarter or 5 s", delay, got)
			}
		}
	}

	// WEBHOOK_BACKOFF=1s with the default jitter: 0.8 s to 1.2 s.
	cfg := Config{Backoff: Schedule{time.Second}, Jitter: 0.2}
	r := &Runtime{cfg: cfg}
	due := map[time.Time]bool{}
	for range 1000 {
		due[base.Add(onTick(r.retryDelay(errors.New("500"), 1), base))] = true
	}
	if len(due) > 3 {
		t.Errorf("1,000 retries of a 1 s ±20%% schedule fall due at %d distinct times, want at most 3", len(due))
	}
}
