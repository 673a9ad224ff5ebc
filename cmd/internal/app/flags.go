package app

import (
	"flag"
	"time"

	"github.com/eventmesh/eventmesh/streams"
)

// Duration defines a duration flag on fs, as fs.Duration does, that reads
// the syntax of the duration variables (streams.ParseDuration: days too).
func Duration(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	*p = value
	fs.Var((*durationValue)(p), name, usage)
	return p
}

type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := streams.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
