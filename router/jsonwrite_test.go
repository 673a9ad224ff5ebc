package router

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestAppendJSONStringAsMarshal: AppendJSONString writes every string as
// json.Marshal does, byte for byte: the plain-ASCII fast path and the
// fallback alike (fixed cases, then 20,000 random strings drawn from
// bytes that need escaping and bytes that do not).
func TestAppendJSONStringAsMarshal(t *testing.T) {
	cases := []string{"", "transport.messageReceived", "enmeshed-connector", "id-0001", `a"b`, `a\b`,
		"<script>&", "tab\there", "nl\n", "\x00\x1f\x7f", "ünïcode", "\u2028\u2029", "bad\xffutf8", "~!@#$%^*()_+{}|:?"}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("az09._-:/ \"\\<>&\t\n\x00\x7f\xc3\xbc\xe2\x80\xa8\xff")
	for range 20_000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := AppendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, json.Marshal: %s", s, got[1:], want)
		}
	}
}
