package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// A light scanner for the two things the hot path needs from JSON it has
// already validated: the members of an object (the ingest envelope) and one
// top-level string (an event's id). encoding/json would scan the same bytes
// twice (validate, then decode) and allocate on the way.

var errScan = errors.New("malformed JSON object")

// CheckJSON returns nil when b is one JSON value as RFC 8259 defines it,
// UTF-8 throughout, and otherwise why it is not. json.Valid alone accepts
// invalid UTF-8 inside strings (json.Unmarshal turns it into U+FFFD), so
// bytes it passes could be stored as data that strict JSON readers refuse.
func CheckJSON(b []byte) error {
	if Valid(b) {
		if utf8.Valid(b) {
			return nil
		}
		i := 0
		for i < len(b) {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		return fmt.Errorf("invalid UTF-8 at byte %d (JSON text must be UTF-8)", i)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return errors.New("not a JSON value")
}

// ValidJSON reports whether CheckJSON(b) passes.
func ValidJSON(b []byte) bool { return Valid(b) && utf8.Valid(b) }

// Members calls fn with each member of the JSON object b, in order: the raw
// key (between the quotes, escapes as written) and the raw value. It stops
// early when fn returns false. b should be valid JSON (json.Valid); the
// scanner checks only the structure it walks.
func Members(b []byte, fn func(key, value []byte) bool) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errScan
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errScan
		}
		end := stringEnd(b, i)
		if end < 0 {
			return errScan
		}
		key := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return errScan
		}
		i = skipWS(b, i+1)
		vend := valueEnd(b, i)
		if vend < 0 {
			return errScan
		}
		if !fn(key, b[i:vend]) {
			return nil
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			return errScan
		}
		if b[i] == '}' {
			return nil
		}
		if b[i] != ',' {
			return errScan
		}
		i = skipWS(b, i+1)
	}
}

// KeyIs reports whether a raw key from Members equals name, decoding
// escapes if the key has any.
func KeyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	return json.Unmarshal(q, &s) == nil && s == name
}

// StringValue returns the string a raw JSON value holds, and false when the
// value is not a string.
func StringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	// Escapes or invalid UTF-8: decode as encoding/json does (invalid
	// bytes become U+FFFD), so every reader of the value agrees.
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// topLevelString returns the string value of the last member named key of
// the object b (the last, as encoding/json would take it), and false when
// there is none or it is not a string.
func topLevelString(b []byte, key string) (string, bool) {
	var val []byte
	if Members(b, func(k, v []byte) bool {
		if KeyIs(k, key) {
			val = v
		}
		return true
	}) != nil || val == nil {
		return "", false
	}
	return StringValue(val)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index after the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
