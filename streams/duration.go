package streams

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// ParseDuration parses a duration as time.ParseDuration does ("90s",
// "1h30m", "-2m", "0") and also takes days, d = 24h, alone or with other
// units: "7d", "1.5d", "1d12h". Every duration variable and flag of the
// mesh is read with it.
func ParseDuration(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%q is not a duration: want a number with a unit (ns, us, ms, s, m, h, d), e.g. 90s, 15m, 24h, 7d, 1d12h", s)
	}
	if !strings.Contains(s, "d") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return bad()
		}
		return d, nil
	}
	// Split off the days: everything up to the "d" (with the sign); the
	// rest is a Go duration.
	rest := s
	neg := false
	if c := rest[0]; c == '-' || c == '+' {
		neg, rest = c == '-', rest[1:]
	}
	days, rest, _ := strings.Cut(rest, "d")
	if !isDecimal(days) || strings.ContainsRune(rest, 'd') {
		return bad()
	}
	// The days as hours: exact to the nanosecond that ParseDuration keeps.
	perDay, err := time.ParseDuration(days + "h")
	if err != nil || perDay > math.MaxInt64/24 {
		return bad()
	}
	d := 24 * perDay
	if rest != "" {
		// Units follow: no sign, no bare number ("1d0").
		if c := rest[0]; c == '+' || c == '-' || !unicode.IsLetter(rune(rest[len(rest)-1])) {
			return bad()
		}
		r, err := time.ParseDuration(rest)
		if err != nil || r > math.MaxInt64-d {
			return bad()
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// isDecimal reports whether s is a non-negative decimal number: digits
// with at most one point, at least one digit.
func isDecimal(s string) bool {
	digits, points := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}
