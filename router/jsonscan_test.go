package router

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTopLevelString(t *testing.T) {
	for in, want := range map[string]string{
		`{"id":"MSG1"}`: "MSG1",
		` { "x" : {"id":"nested"}, "id" : "top" }`: "top",
		`{"id":"first","id":"last"}`:               "last",
		`{"i\u0064":"escaped-key"}`:                "escaped-key",
		`{"id":"a\"b"}`:                            `a"b`,
		`{"a":[1,{"id":"x"},"]}"],"id":"y"}`:       "y",
		`{"id":5}`:                                 "",
		`{"ID":"upper"}`:                           "",
		`{}`:                                       "",
		`[]`:                                       "",
	} {
		got, ok := topLevelString([]byte(in), "id")
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", in, got, ok, want)
		}
	}
}

// FuzzMembers: on valid JSON the scanner agrees with encoding/json decoding
// into a map (exact keys, the last duplicate wins).
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"id":"a","b":[1,2,{"c":"d"}],"e":null,"f":-1.5e3,"g":true}`, `{"i\u0064":"x"}`, `{}`, `{"a":"\"}"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			topLevelString(b, "id") // must not panic
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			if Members(b, func(k, v []byte) bool { return true }) == nil && len(b) > 0 {
				// Not an object, so Members must have refused it.
				t.Fatalf("Members accepted a non-object %q", b)
			}
			return
		}
		if m == nil {
			return // JSON null decodes into a nil map; Members wants an object
		}
		n := 0
		if err := Members(b, func(k, v []byte) bool {
			n++
			if !json.Valid(v) {
				t.Fatalf("value %q of %q is not a JSON value", v, b)
			}
			return true
		}); err != nil {
			t.Fatalf("Members(%q): %v", b, err)
		}
		if n < len(m) {
			t.Fatalf("%q: %d members, map has %d", b, n, len(m))
		}
		want, wantOK := "", false
		if raw, ok := m["id"]; ok {
			want, wantOK = "", false
			var s string
			if json.Unmarshal(raw, &s) == nil && raw[0] == '"' {
				want, wantOK = s, true
			}
		}
		got, ok := topLevelString(b, "id")
		if got != want || ok != wantOK {
			t.Fatalf("%q: got %q %v, want %q %v", b, got, ok, want, wantOK)
		}
	})
}

// CheckJSON takes JSON in UTF-8 only, and says where the UTF-8 breaks.
func TestCheckJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"café €"}`:                 "",
		`{"a":"\ud83d\ude00"}`:           "",
		`{"a":"caf` + "\xe9" + `"}`:      "invalid UTF-8 at byte 9",
		`{"` + "\xff" + `":1}`:           "invalid UTF-8 at byte 2",
		`{"a":"` + "\xed\xa0\x80" + `"}`: "invalid UTF-8 at byte 6",
		`{"a":`:                          "unexpected end of JSON input",
		`{} {}`:                          "invalid character",
	} {
		err := CheckJSON([]byte(in))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckJSON(%q) = %v, want %q", in, err, want)
		}
		if ValidJSON([]byte(in)) != (err == nil) {
			t.Errorf("ValidJSON(%q) disagrees with CheckJSON", in)
		}
	}
}
