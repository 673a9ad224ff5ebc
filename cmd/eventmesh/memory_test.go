package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// A serving eventmesh sets its default soft memory limit when GOMEMLIMIT
// is unset, leaves the limit GOMEMLIMIT gave alone, and puts the previous
// limit back when it returns.
func TestDefaultMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64) // the runtime's "no limit"
	defer debug.SetMemoryLimit(prev)
	log := slog.New(slog.DiscardHandler)

	restore := setMemoryLimit([]string{"PATH=/bin", "GOMEMLIMIT="}, log)
	if got := debug.SetMemoryLimit(-1); got != defaultMemoryLimit {
		t.Errorf("GOMEMLIMIT unset (or empty): limit %d, want %d", got, defaultMemoryLimit)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("after restore: limit %d, want the previous %d", got, int64(math.MaxInt64))
	}

	for _, v := range []string{"1GiB", "off"} {
		restore = setMemoryLimit([]string{"GOMEMLIMIT=" + v}, log)
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("GOMEMLIMIT=%s: eventmesh changed the limit to %d", v, got)
		}
		restore()
	}
}
