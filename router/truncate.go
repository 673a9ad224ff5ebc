package router

import "unicode/utf8"

// Truncate returns s cut to at most n bytes, at a rune boundary so the cut
// never splits a UTF-8 sequence (the result may be shorter than n by up to
// three bytes); s itself when it is no longer than n. Header values, log
// excerpts and stored errors are bounded in bytes, and a split sequence
// would come out as U+FFFD or as invalid UTF-8 further on.
//
// It neither marks the cut nor repairs invalid UTF-8 already in s: a caller
// that wants an ellipsis, one line or valid UTF-8 adds that around it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
