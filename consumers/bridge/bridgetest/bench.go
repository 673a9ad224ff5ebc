package bridgetest

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Parallel runs n calls of f spread over workers goroutines (each call
// waits for its confirm, so workers is the number in flight) and returns
// calls per second; the first error fails tb.
func Parallel(tb testing.TB, n, workers int, f func(i int) error) float64 {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		tb.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// Median returns the median of xs (the upper one of an even count).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
