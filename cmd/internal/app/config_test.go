package app_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
)

// Every duration variable and every duration flag read the same syntax:
// Go's units and days.
func TestDurationsTakeDays(t *testing.T) {
	type cfg struct {
		MaxAge  time.Duration      `env:"MAX_AGE" envDefault:"7d"`
		Lease   *time.Duration     `env:"LEASE"`
		Backoff consumers.Schedule `env:"BACKOFF" envDefault:"5s,1d"`
		Other   time.Duration      `env:"OTHER" envDefault:"90s"`
	}
	c, err := app.Load[cfg]([]string{"LEASE=1d12h"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxAge != 7*24*time.Hour || c.Lease == nil || *c.Lease != 36*time.Hour || c.Other != 90*time.Second ||
		len(c.Backoff) != 2 || c.Backoff[1] != 24*time.Hour {
		t.Errorf("parsed %+v (lease %v)", c, c.Lease)
	}
	for env, name := range map[string]string{"MAX_AGE=7x": "MAX_AGE", "LEASE=d": "LEASE", "BACKOFF=5s,2days": "BACKOFF"} {
		_, err := app.Load[cfg]([]string{env})
		if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%s: %v, want an error naming %s", env, err, name)
		}
	}

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	every := app.Duration(fs, "every", 2*time.Second, "")
	if *every != 2*time.Second {
		t.Errorf("default %v", *every)
	}
	if err := fs.Parse([]string{"--every", "1d30m"}); err != nil || *every != 24*time.Hour+30*time.Minute {
		t.Errorf("--every 1d30m: %v %v", *every, err)
	}
	if err := fs.Parse([]string{"--every", "soon"}); err == nil || !strings.Contains(err.Error(), "-every") {
		t.Errorf("--every soon: %v, want an error naming the flag", err)
	}
}

// An address tagged empty:"off" set to the empty string is off (empty),
// not its default; unset, it takes the default.
func TestEmptyMeansOff(t *testing.T) {
	type inner struct {
		Addr string `env:"ADDR" envDefault:"127.0.0.1:8088" empty:"off"`
	}
	type cfg struct {
		In    inner  `envPrefix:"X_"`
		Other string `env:"OTHER" envDefault:"kept"`
	}
	c, err := app.Load[cfg]([]string{"X_ADDR=", "OTHER="})
	if err != nil {
		t.Fatal(err)
	}
	if c.In.Addr != "" || c.Other != "kept" {
		t.Errorf("X_ADDR= gives %q (want empty), OTHER= gives %q (want the default)", c.In.Addr, c.Other)
	}
	if c, _ := app.Load[cfg](nil); c.In.Addr != "127.0.0.1:8088" {
		t.Errorf("unset X_ADDR gives %q, want the default", c.In.Addr)
	}
}
