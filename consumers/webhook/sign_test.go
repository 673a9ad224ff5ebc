package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Test vectors. Every expected signature below was computed with openssl,
// independently of this package, using the shell command in the comment
// above it (OpenSSL 3.0). That is what makes these tests evidence that our
// output interoperates, rather than a restatement of our own code.

const (
	signVecID   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	signVecTS   = 1614265330
	signVecBody = `{"test": 2432232314}`
)

// signSpecSecret is the example secret from the Standard Webhooks reference
// libraries' tests (a 24-byte key, the minimum the spec recommends). Its key
// in hex, for the openssl commands:
//
//	printf '%s' MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256
//	=> 31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0
const signSpecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// signSpecSig is the published expected signature for signVecID, signVecTS
// and signVecBody under signSpecSecret, re-derived with:
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' | openssl dgst -sha256 -mac HMAC -macopt hexkey:31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0 -binary | base64
const signSpecSig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

// signSecretA is a 32-byte key 0x00, 0x01, ..., 0x1f:
//
//	printf '%s' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f | xxd -r -p | base64 -w0
const signSecretA = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// signSigA signs the spec message with signSecretA:
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f -binary | base64
const signSigA = "v1,O4Gjv1HqPqsMrjmczoggs/sWA8gZD0VyHG+fLh4+ktI="

// signSigAEmpty signs an empty body under signSecretA, with another id and
// timestamp:
//
//	printf '%s' 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1674087231.' | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f -binary | base64
const signSigAEmpty = "v1,ET/52+LuqQDyNkDsD8ylJcB7/dWj/MMfGFzSP9D5S+o="

// signSecretB is a 64-byte key (the maximum) 0xff, 0xfe, ..., 0xc0; its
// base64 contains '+' and '/', which only standard base64 accepts:
//
//	printf '%s' fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0dfdedddcdbdad9d8d7d6d5d4d3d2d1d0cfcecdcccbcac9c8c7c6c5c4c3c2c1c0 | xxd -r -p | base64 -w0
const signSecretB = "whsec_//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eDf3t3c29rZ2NfW1dTT0tHQz87NzMvKycjHxsXEw8LBwA=="

// signSigB signs the spec message with signSecretB:
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' | openssl dgst -sha256 -mac HMAC -macopt hexkey:fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0dfdedddcdbdad9d8d7d6d5d4d3d2d1d0cfcecdcccbcac9c8c7c6c5c4c3c2c1c0 -binary | base64
const signSigB = "v1,W1ii68kLynfAoav0UlTrIO+lTT1zTkDmOLFsgDKwzJ8="

func signMustParse(t testing.TB, s string) *Signer {
	t.Helper()
	signer, err := ParseSecrets(s)
	if err != nil {
		t.Fatalf("ParseSecrets: %v", err)
	}
	return signer
}

func TestSignVectors(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		id     string
		ts     time.Time
		body   string
		want   string
	}{
		{"spec example", signSpecSecret, signVecID, time.Unix(signVecTS, 0), signVecBody, signSpecSig},
		{"32-byte key", signSecretA, signVecID, time.Unix(signVecTS, 0), signVecBody, signSigA},
		{"64-byte key", signSecretB, signVecID, time.Unix(signVecTS, 0), signVecBody, signSigB},
		{"empty body", signSecretA, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Unix(1674087231, 0), "", signSigAEmpty},
		// The header carries whole seconds, so a fraction must not change
		// the signature (it is truncated, not rounded up).
		{"sub-second time truncated", signSpecSecret, signVecID, time.Unix(signVecTS, 999_999_999), signVecBody, signSpecSig},
		{"time zone irrelevant", signSpecSecret, signVecID, time.Unix(signVecTS, 0).In(time.FixedZone("X", -7*3600)), signVecBody, signSpecSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := signMustParse(t, tt.secret)
			if got := s.Sign(tt.id, tt.ts, []byte(tt.body)); got != tt.want {
				t.Errorf("Sign = %q, want %q", got, tt.want)
			}
			h := http.Header{}
			s.Headers(h, tt.id, tt.ts, []byte(tt.body))
			if err := Verify(tt.secret, h, []byte(tt.body), time.Minute, tt.ts); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestSignHeaders(t *testing.T) {
	s := signMustParse(t, signSpecSecret)
	h := http.Header{}
	// Stale values from an earlier attempt must be replaced, not appended.
	h.Add(HeaderSignature, "v1,stale")
	h.Add(HeaderTimestamp, "1")
	s.Headers(h, signVecID, time.Unix(signVecTS, 500_000_000), []byte(signVecBody))
	for name, want := range map[string]string{
		HeaderID:        signVecID,
		HeaderTimestamp: "1614265330",
		HeaderSignature: signSpecSig,
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%q]", name, got, want)
		}
	}
}

func TestSignZeroSignerPanics(t *testing.T) {
	for name, s := range map[string]*Signer{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Sign on a Signer without secrets did not panic")
				}
			}()
			s.Sign(signVecID, time.Unix(signVecTS, 0), nil)
		})
	}
}

func TestSignTwoSecrets(t *testing.T) {
	ts := time.Unix(signVecTS, 0)
	body := []byte(signVecBody)
	tests := []struct {
		name    string
		secrets string
		want    string
	}{
		{"A then B", signSecretA + " " + signSecretB, signSigA + " " + signSigB},
		{"B then A", signSecretB + " " + signSecretA, signSigB + " " + signSigA},
		{"odd white space", "\n\t" + signSecretA + "  \r\n " + signSecretB + "\n", signSigA + " " + signSigB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := signMustParse(t, tt.secrets)
			got := s.Sign(signVecID, ts, body)
			if got != tt.want {
				t.Fatalf("Sign = %q, want %q", got, tt.want)
			}
			h := http.Header{}
			s.Headers(h, signVecID, ts, body)
			// Each receiver holds only one of the secrets mid-rotation.
			for _, one := range []string{signSecretA, signSecretB} {
				if err := Verify(one, h, body, time.Minute, ts); err != nil {
					t.Errorf("Verify with one secret: %v", err)
				}
			}
			if err := Verify(signSpecSecret, h, body, time.Minute, ts); !errors.Is(err, ErrSignature) {
				t.Errorf("Verify with an unrelated secret = %v, want ErrSignature", err)
			}
		})
	}
}

func TestVerifyFailures(t *testing.T) {
	const tolerance = 5 * time.Minute
	signed := time.Unix(signVecTS, 0)
	signer := signMustParse(t, signSpecSecret)

	tests := []struct {
		name string
		// edit changes a correctly signed request; now is the receiver's clock.
		edit   func(h http.Header, body []byte) []byte
		secret string
		now    time.Time
		want   error // nil means success
	}{
		{name: "valid", now: signed},
		{name: "valid at past edge", now: signed.Add(tolerance)},
		{name: "valid at future edge", now: signed.Add(-tolerance)},
		{
			name: "unknown versions and junk are skipped",
			edit: func(h http.Header, b []byte) []byte {
				h.Set(HeaderSignature, "v1a,bm9wZQ== v2,xyz junk v1,bm9wZQ== "+h.Get(HeaderSignature)+" v1,")
				return b
			},
			now: signed,
		},
		{
			name: "tampered body",
			edit: func(_ http.Header, b []byte) []byte { b[len(b)-2] ^= 1; return b },
			now:  signed, want: ErrSignature,
		},
		{
			name: "appended body",
			edit: func(_ http.Header, b []byte) []byte { return append(b, ' ') },
			now:  signed, want: ErrSignature,
		},
		{
			name: "tampered id",
			edit: func(h http.Header, b []byte) []byte { h.Set(HeaderID, signVecID+"x"); return b },
			now:  signed, want: ErrSignature,
		},
		{
			name: "tampered timestamp",
			edit: func(h http.Header, b []byte) []byte { h.Set(HeaderTimestamp, "1614265331"); return b },
			now:  signed, want: ErrSignature,
		},
		{name: "wrong secret", secret: signSecretA, now: signed, want: ErrSignature},
		{name: "stale beyond tolerance", now: signed.Add(tolerance + time.Second), want: ErrTimestamp},
		{name: "stale by a nanosecond", now: signed.Add(tolerance + 1), want: ErrTimestamp},
		{name: "future beyond tolerance", now: signed.Add(-tolerance - time.Second), want: ErrTimestamp},
		{
			name: "missing id",
			edit: func(h http.Header, b []byte) []byte { h.Del(HeaderID); return b },
			now:  signed, want: ErrSignature,
		},
		{
			name: "missing timestamp",
			edit: func(h http.Header, b []byte) []byte { h.Del(HeaderTimestamp); return b },
			now:  signed, want: ErrTimestamp,
		},
		{
			name: "missing signature",
			edit: func(h http.Header, b []byte) []byte { h.Del(HeaderSignature); return b },
			now:  signed, want: ErrSignature,
		},
		{
			name: "blank signature",
			edit: func(h http.Header, b []byte) []byte { h.Set(HeaderSignature, "  "); return b },
			now:  signed, want: ErrSignature,
		},
	}
	// Malformed signature lists: none may be mistaken for a match.
	good := strings.TrimPrefix(signSpecSig, "v1,")
	for _, list := range []string{
		"v1",
		"v1,",
		"junk",
		",",
		"v1;" + good,
		"V1," + good,
		"v1a," + good,
		"v1," + good + "x",
		"v1," + strings.TrimRight(good, "="),
		"v1,," + good,
		"v1," + good[1:],
		"v1" + good,
	} {
		tests = append(tests, struct {
			name   string
			edit   func(h http.Header, body []byte) []byte
			secret string
			now    time.Time
			want   error
		}{
			name: "malformed signature " + list,
			edit: func(h http.Header, b []byte) []byte { h.Set(HeaderSignature, list); return b },
			now:  signed, want: ErrSignature,
		})
	}
	// Non-canonical timestamps: the HMAC covers the header text, so only
	// the one decimal spelling is accepted.
	for _, ts := range []string{"abc", "+1614265330", "01614265330", " 1614265330", "1614265330 ", "1614265330.0", "-1614265330", "1.6e9", "99999999999999999999"} {
		tests = append(tests, struct {
			name   string
			edit   func(h http.Header, body []byte) []byte
			secret string
			now    time.Time
			want   error
		}{
			name: "malformed timestamp " + ts,
			edit: func(h http.Header, b []byte) []byte { h.Set(HeaderTimestamp, ts); return b },
			now:  signed, want: ErrTimestamp,
		})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(signVecBody)
			h := http.Header{}
			signer.Headers(h, signVecID, signed, body)
			if tt.edit != nil {
				body = tt.edit(h, body)
			}
			secret := tt.secret
			if secret == "" {
				secret = signSpecSecret
			}
			err := Verify(secret, h, body, tolerance, tt.now)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Verify = %v, want success", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), good) {
				t.Errorf("error %q reveals the signature", err)
			}
		})
	}
}

func TestVerifyBadSecret(t *testing.T) {
	h := http.Header{}
	signMustParse(t, signSpecSecret).Headers(h, signVecID, time.Unix(signVecTS, 0), []byte(signVecBody))
	for _, secret := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", signSpecSecret + " " + signSecretA} {
		err := Verify(secret, h, []byte(signVecBody), time.Minute, time.Unix(signVecTS, 0))
		if err == nil || errors.Is(err, ErrSignature) || errors.Is(err, ErrTimestamp) {
			t.Errorf("Verify(secret %d chars) = %v, want a configuration error", len(secret), err)
		}
		if err != nil && strings.Contains(err.Error(), "MfKQ9r8G") {
			t.Errorf("error %q reveals the secret", err)
		}
	}
}

func TestParseSecretsRejects(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	key := func(n int) []byte { // n distinct bytes
		k := make([]byte, n)
		for i := range k {
			k[i] = byte(0x41 + i*7)
		}
		return k
	}
	tests := []struct {
		name  string
		input string
		// secretPart is what must not appear in the error; pos is the
		// 1-based position the error must name (0: none).
		secretPart string
		pos        int
	}{
		{name: "empty", input: ""},
		{name: "only white space", input: " \t\r\n "},
		{name: "no prefix", input: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secretPart: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", pos: 1},
		{name: "upper-case prefix", input: "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secretPart: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", pos: 1},
		{name: "asymmetric prefix", input: "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secretPart: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", pos: 1},
		{name: "second lacks prefix", input: signSecretA + " MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secretPart: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", pos: 2},
		{name: "bad base64 characters", input: signSecretA + " whsec_not*base64!!chars", secretPart: "not*base64!!chars", pos: 2},
		{name: "url-safe alphabet", input: "whsec___79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eDf3t3c29rZ2NfW1dTT0tHQz87NzMvKycjHxsXEw8LBwA==",
			secretPart: "__79_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eDf3t3c29rZ2NfW1dTT0tHQz87NzMvKycjHxsXEw8LBwA==", pos: 1},
		{name: "missing padding", input: "whsec_" + strings.TrimRight(b64(key(32)), "="), secretPart: strings.TrimRight(b64(key(32)), "="), pos: 1},
		{name: "empty key", input: "whsec_", pos: 1},
		{name: "16-byte key", input: "whsec_" + b64(key(16)), secretPart: b64(key(16)), pos: 1},
		{name: "23-byte key", input: signSecretB + " whsec_" + b64(key(23)), secretPart: b64(key(23)), pos: 2},
		{name: "65-byte key", input: "whsec_" + b64(key(65)), secretPart: b64(key(65)), pos: 1},
		{name: "duplicate", input: signSecretA + " " + signSecretB + " " + signSecretA, secretPart: strings.TrimPrefix(signSecretA, "whsec_"), pos: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSecrets(tt.input)
			if err == nil {
				t.Fatalf("ParseSecrets accepted it: %v", s)
			}
			msg := err.Error()
			if !strings.Contains(msg, "WEBHOOK_SECRET") {
				t.Errorf("error %q does not name WEBHOOK_SECRET", msg)
			}
			if tt.pos > 0 && !strings.Contains(msg, fmt.Sprintf("secret %d", tt.pos)) {
				t.Errorf("error %q does not name position %d", msg, tt.pos)
			}
			if tt.secretPart != "" && strings.Contains(msg, tt.secretPart) {
				t.Errorf("error %q reveals the secret", msg)
			}
			for _, field := range strings.Fields(tt.input) {
				if b, ok := strings.CutPrefix(field, "whsec_"); ok && len(b) >= 8 && strings.Contains(msg, b) {
					t.Errorf("error %q reveals a secret", msg)
				}
			}
		})
	}
}

func TestParseSecretsAccepts(t *testing.T) {
	tests := []struct {
		input string
		n     int
	}{
		{signSpecSecret, 1}, // 24 bytes: the lower bound
		{signSecretB, 1},    // 64 bytes: the upper bound
		{"  " + signSecretA + "\n", 1},
		{signSecretA + "\t" + signSecretB + "\n" + signSpecSecret, 3},
	}
	for _, tt := range tests {
		s, err := ParseSecrets(tt.input)
		if err != nil {
			t.Errorf("ParseSecrets(%d secrets): %v", tt.n, err)
			continue
		}
		if want := fmt.Sprintf("webhook.Signer(%d secrets)", tt.n); s.String() != want {
			t.Errorf("String = %q, want %q", s.String(), want)
		}
	}
}

func TestSignerFormatHidesKeys(t *testing.T) {
	s := signMustParse(t, signSecretA+" "+signSecretB)
	// Everything that would identify a key, in the forms a printer
	// might produce.
	var leaks []string
	for _, secret := range []string{signSecretA, signSecretB} {
		b := strings.TrimPrefix(secret, "whsec_")
		raw, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			t.Fatal(err)
		}
		leaks = append(leaks, b, hex.EncodeToString(raw), fmt.Sprint(raw[:8]), fmt.Sprintf("%#v", raw[:8]), string(raw[8:16]))
	}

	type holder struct {
		signer Signer // by value in an unexported field: fmt cannot call methods
		ptr    *Signer
	}
	outputs := map[string]string{
		"pointer":  fmt.Sprintf("%v %+v %#v %s", s, s, s, s),
		"value":    fmt.Sprintf("%v %+v %#v %s", *s, *s, *s, *s),
		"other":    fmt.Sprintf("%x %X %d %q %10.3v %T", s, *s, s, *s, s, s),
		"holder":   fmt.Sprintf("%v %+v %#v", holder{*s, s}, holder{*s, s}, holder{*s, s}),
		"slice":    fmt.Sprintf("%v %#v", []*Signer{s}, []Signer{*s}),
		"errorf":   fmt.Errorf("config %v", s).Error(),
		"stringer": s.String() + " " + s.GoString(),
	}
	for name, out := range outputs {
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("%s output %q contains key material %q", name, out, leak)
			}
		}
	}
	if got, want := fmt.Sprintf("%v|%s|%#v|%+v", s, *s, s, *s),
		"webhook.Signer(2 secrets)|webhook.Signer(2 secrets)|webhook.Signer(2 secrets)|webhook.Signer(2 secrets)"; got != want {
		t.Errorf("formatted = %q, want %q", got, want)
	}
}

// FuzzVerify checks that whatever Sign produces, Verify accepts with each
// secret, and that changing any one body byte is caught.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(signVecBody), signVecID, int64(signVecTS), uint16(0))
	f.Add([]byte{}, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", int64(1674087231), uint16(7))
	f.Add([]byte("\x00\xff binary \n body"), "id.with.dots", int64(0), uint16(65535))
	f.Add([]byte("x"), "i d", int64(-1), uint16(1))
	f.Add([]byte(strings.Repeat("long body ", 300)), "ü", int64(1<<40), uint16(999))

	const tolerance = 5 * time.Minute
	signer := signMustParse(f, signSecretA+" "+signSecretB)
	f.Fuzz(func(t *testing.T, body []byte, id string, ts int64, pos uint16) {
		if id == "" {
			t.Skip("an empty id is reported as a missing header")
		}
		// Keep the time in a range time.Unix represents exactly (up to
		// about year 2242), and add a sub-second part Sign must drop.
		sec := int64(uint64(ts) % (1 << 33))
		at := time.Unix(sec, int64(pos)*10_000)
		h := http.Header{}
		signer.Headers(h, id, at, body)
		for _, secret := range []string{signSecretA, signSecretB} {
			if err := Verify(secret, h, body, tolerance, at); err != nil {
				t.Fatalf("Verify of a fresh signature: %v", err)
			}
		}
		if len(body) == 0 {
			return
		}
		flipped := append([]byte(nil), body...)
		flipped[int(pos)%len(flipped)] ^= 1 << (pos % 8)
		if err := Verify(signSecretA, h, flipped, tolerance, at); !errors.Is(err, ErrSignature) {
			t.Fatalf("Verify with one body byte flipped = %v, want ErrSignature", err)
		}
	})
}
