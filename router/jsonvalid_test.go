package router

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are inputs on which Valid must agree with json.Valid, and the
// seeds of FuzzValid.
var validCases = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.25e-3`, `123456789012345678901234567890`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `"a"`, `"`, `"\"`, `"\u00e9"`, `"\u00g9"`, `"\u12"`, `"\x"`, `"\/"`,
	"\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"ü\"", `[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`, `{}`, `{ }`, `{"a":1}`, `{"a":}`,
	`{"a" 1}`, `{a:1}`, `{"a":1,}`, `{"a":1,"b":[true,{"c":null}]}`, `{"a":1}}`, `[[]]]`, `[{]`, `{[}`, `{"a":1]`, `[1}`,
	" \t\n\r{\"a\" : [ 1 , 2 ] } \r\n", `1 2`, `{} {}`, "\x00", `"a"x`, `[1,2,3`, `{"a":1`, `{"a"`, `{"`, `{"a":"b"`,
	`{"data":{"id":"MSG1","content":{"@type":"Mail","body":"<b>hi</b> & bye"}},"trigger":"transport.messageReceived"}`,
}

func TestValidAsJSONValid(t *testing.T) {
	cases := append([]string(nil), validCases...)
	// Nesting at encoding/json's limit and one past it.
	cases = append(cases, strings.Repeat("[", 10000)+strings.Repeat("]", 10000),
		strings.Repeat("[", 10001)+strings.Repeat("]", 10001),
		strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000),
		strings.Repeat(`{"a":`, 10001)+"1"+strings.Repeat("}", 10001))
	for _, c := range cases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.60q) = %v, json.Valid: %v", c, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid: %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	data := []byte(`{"id":"MSG0000001","createdBy":"did:e:localhost:dids:0000000000000000000000","recipients":[{"address":"did:e:localhost:dids:1111111111111111111111","relationshipId":"REL00000000000000001"}],"content":{"@type":"Mail","to":["did:e:localhost:dids:1111111111111111111111"],"subject":"Hello","body":"` + strings.Repeat("lorem ipsum dolor sit amet ", 25) + `"},"createdAt":"2026-12-02T17:00:00.000Z","attachments":[],"isOwn":false}`)
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			json.Valid(data)
		}
	})
	b.Run("Valid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			Valid(data)
		}
	})
}
