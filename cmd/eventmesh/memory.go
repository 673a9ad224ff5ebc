package main

import (
	"log/slog"
	"runtime/debug"
	"strings"
)

// defaultMemoryLimit is the soft memory limit of a serving eventmesh
// when GOMEMLIMIT is unset. Go's collector otherwise lets the heap grow
// to twice what is live before it collects: under a burst of big events
// the embedded server's block caches and buffers make the live heap
// 150–190 MB and the process's peak RSS twice that. The limit makes the
// collector work harder near it instead; it is soft, so a heap that needs
// more gets more (the collector then takes at most about half the CPU).
// Ordinary loads of small events stay far below it and never notice it.
const defaultMemoryLimit = 128 << 20

// setMemoryLimit applies defaultMemoryLimit unless environ sets
// GOMEMLIMIT (the Go runtime has applied that one itself; GOMEMLIMIT=off
// turns any limit off), logs the limit in force, and returns what puts
// the previous limit back (for tests, which call run in their process).
func setMemoryLimit(environ []string, log *slog.Logger) (restore func()) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GOMEMLIMIT="); ok && v != "" {
			log.Debug("soft memory limit from GOMEMLIMIT", "gomemlimit", v)
			return func() {}
		}
	}
	prev := debug.SetMemoryLimit(defaultMemoryLimit)
	log.Debug("soft memory limit (GOMEMLIMIT unset)", "bytes", defaultMemoryLimit)
	return func() { debug.SetMemoryLimit(prev) }
}
