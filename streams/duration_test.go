package streams

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"0":          0,
		"90s":        90 * time.Second,
		"1h30m":      90 * time.Minute,
		"500ms":      500 * time.Millisecond,
		"-2m":        -2 * time.Minute,
		"7d":         7 * day,
		"1d":         day,
		"0d":         0,
		"1.5d":       36 * time.Hour,
		".5d":        12 * time.Hour,
		"1d12h":      36 * time.Hour,
		"2d500ms":    2*day + 500*time.Millisecond,
		"+1d":        day,
		"-1d12h":     -36 * time.Hour,
		"106751d":    106751 * day,
		"90d":        2160 * time.Hour,
		"3d0h":       3 * day,
		"1d1.5h":     day + 90*time.Minute,
		"1us":        time.Microsecond,
		"1µs":        time.Microsecond,
		"106751d23h": 106751*day + 23*time.Hour,
		"1d2ms3ns":   day + 2*time.Millisecond + 3,
		"1.25d":      30 * time.Hour,
		"1d0s":       day,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "d", "soon", "7", "7days", "7 d", "1d2d", "1h2d", "d1h", "1d0", "1d-2h", "1d+2h", "--1d", "-+1d",
		"1..5d", "1.5.d", "1dh", "1d1x", "106752d", "106751d24h", "1e3d", "0x10d", "1d 2h", " 1d",
	} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		} else if !strings.Contains(err.Error(), "7d") || !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseDuration(%q): %v: want the value quoted and an example", in, err)
		}
	}
}
