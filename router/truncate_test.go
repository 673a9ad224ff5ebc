package router

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 0, ""},
		{"abc", 3, "abc"},
		{"abc", 5, "abc"},
		{"abcd", 3, "abc"},
		{"abc", 0, ""},
		{"abc", -1, ""},
		{"aé", 3, "aé"},
		{"aé", 2, "a"}, // é is two bytes: cutting at 2 would keep half of it
		{"a€b", 3, "a"},
		{"a€b", 4, "a€"},
		{"😀x", 3, ""},
		{"😀x", 4, "😀"},
		{"a\xffb", 2, "a\xff"}, // invalid UTF-8 already there is kept as it is
	} {
		if got := Truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
	// Every cut of a text in several scripts is valid UTF-8 and a prefix.
	s := strings.Repeat("Grüße, 世界 😀! ", 4)
	for n := 0; n <= len(s)+1; n++ {
		got := Truncate(s, n)
		if !utf8.ValidString(got) || !strings.HasPrefix(s, got) || len(got) > n || len(got) < min(n, len(s))-3 {
			t.Fatalf("Truncate(s, %d) = %q: not the longest valid prefix of at most %d bytes", n, got, n)
		}
	}
}
