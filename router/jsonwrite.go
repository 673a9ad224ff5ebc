package router

import "encoding/json"

// AppendJSONString appends s as a JSON string, as json.Marshal writes it
// (HTML-safe, invalid UTF-8 replaced), without json.Marshal's work and
// allocation for the plain-ASCII strings of the hot paths (ids, types,
// sources, consumer names, most headers).
func AppendJSONString(b []byte, s string) []byte {
	if !PlainJSON(s) {
		q, _ := json.Marshal(s) // a string always marshals
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// PlainJSON reports whether json.Marshal writes s as it is between quotes:
// printable ASCII without the quote, the backslash or an HTML character it
// escapes (<, >, &). Anything else (control characters, bytes beyond
// ASCII, which it checks for valid UTF-8 and U+2028/U+2029) it rewrites.
func PlainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
