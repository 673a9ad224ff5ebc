package router

import "encoding/json"

// AppendJSONString appends s as a JSON string, as json.Marshal writes it
// (HTML-safe, invalid UTF-8 replaced), without json.Marshal's work and
// allocation for the plain-ASCII strings of the hot paths.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		// What json.Marshal escapes or replaces: control characters, the
		// quote and backslash, <, > and & (HTML-safe), and beyond ASCII
		// invalid UTF-8, U+2028 and U+2029. Ids, types, sources and
		// consumer names are plain ASCII: copied as they are.
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
