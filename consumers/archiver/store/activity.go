package store

import (
	"fmt"
	"time"
)

// Tally is one count of Activity: the events whose Time falls in a bucket
// (Consumer and Result empty), or the outcomes one consumer recorded with
// one result in it.
type Tally struct {
	Bucket   time.Time // start of the bucket, UTC
	Consumer string    // durable name; "" for events
	Result   string    // outcome result; "" for events
	Count    int64
}

// activityBounds checks Activity's arguments and returns them in Unix
// microseconds, since lowered to a multiple of step.
func activityBounds(since, until time.Time, step time.Duration) (from, to, width int64, err error) {
	if step < time.Second || step%time.Second != 0 {
		return 0, 0, 0, fmt.Errorf("%w: activity step %s: want whole seconds, at least 1s", ErrBadFilter, step)
	}
	width = step.Microseconds()
	from, to = since.UnixMicro(), until.UnixMicro()
	from -= ((from % width) + width) % width
	if to <= from {
		return 0, 0, 0, fmt.Errorf("%w: activity until %s is not after since %s", ErrBadFilter, until, since)
	}
	return from, to, width, nil
}
