package webhook

// Signing follows the Standard Webhooks specification
// (https://www.standardwebhooks.com/, spec/standard-webhooks.md): the
// symmetric "v1" scheme, HMAC-SHA256 over "{id}.{timestamp}.{body}". We use
// that scheme rather than our own so a receiver can use any off-the-shelf
// Standard Webhooks (or Svix) library to check what we send.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names from the Standard Webhooks specification. They are written
// lower-case as in the spec; http.Header canonicalises them on Set and Get,
// and HTTP header names are case-insensitive on the wire anyway.
const (
	// HeaderID carries the message id. It stays the same across retries so
	// receivers can use it as an idempotency key.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the attempt time in decimal unix seconds. It
	// is signed, so receivers can reject replays of old deliveries.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries a space-separated list of "v1,<base64>"
	// signatures, one per secret, so secrets can be rotated without
	// downtime.
	HeaderSignature = "webhook-signature"
)

// Key sizes accepted by ParseSecrets. The spec recommends symmetric secrets
// of at least 24 bytes (192 bits) and at most 64 bytes (512 bits). Shorter
// keys are too easy to brute-force; a longer key adds nothing, because HMAC
// hashes a key longer than the 64-byte SHA-256 block down to 32 bytes first,
// and other implementations may refuse such a secret.
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// secretPrefix marks a Standard Webhooks symmetric secret. Requiring it
// catches a raw password, an asymmetric "whsk_" key or a truncated paste
// before it is used to sign anything.
const secretPrefix = "whsec_"

// Signer signs webhook requests with one or more secrets.
//
// Several secrets exist for key rotation: during a rotation the request
// carries one signature per secret so receivers that still hold the old
// secret, and those that already have the new one, both accept it.
//
// A Signer is immutable and safe for concurrent use. Obtain one from
// ParseSecrets; the zero value holds no secrets and Sign panics on it.
//
// The keys sit behind a pointer so that even reflection-based printing of a
// struct that embeds a Signer by value in an unexported field (where fmt
// cannot call our methods) shows only an address, never key bytes.
type Signer struct {
	ks *signerKeySet
}

// signerKeySet holds decoded HMAC keys in the order they were configured,
// and for each a pool of HMAC states keyed with it: keying one costs two
// SHA-256 blocks and five allocations, for every request otherwise.
type signerKeySet struct {
	keys [][]byte
	macs []sync.Pool // of hash.Hash, one pool per key
}

func newSignerKeySet(keys [][]byte) *signerKeySet {
	ks := &signerKeySet{keys: keys, macs: make([]sync.Pool, len(keys))}
	for i, key := range keys {
		ks.macs[i].New = func() any { return hmac.New(sha256.New, key) }
	}
	return ks
}

// ParseSecrets parses WEBHOOK_SECRET: one or more `whsec_<base64>` secrets
// separated by white space, in the order their signatures should appear.
//
// It rejects empty input, a secret without the `whsec_` prefix, a part that
// is not standard padded base64, a decoded key shorter than 24 bytes or
// longer than 64 bytes (the range the spec recommends), and duplicate
// secrets (signing twice with one key only lengthens the header, and usually
// means a rotation was botched).
//
// Errors name WEBHOOK_SECRET and the 1-based position of the bad secret, but
// never include any secret material, because configuration errors end up in
// logs.
func ParseSecrets(s string) (*Signer, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("WEBHOOK_SECRET: empty; want one or more whsec_<base64> secrets separated by white space")
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		pos := i + 1
		// Only positions and lengths go into these errors: the input is
		// secret, and even a fragment of it shortens a brute-force search.
		b64, ok := strings.CutPrefix(f, secretPrefix)
		if !ok {
			return nil, fmt.Errorf("WEBHOOK_SECRET: secret %d: missing %q prefix", pos, secretPrefix)
		}
		// base64's own error reports only an offset, but we drop it anyway
		// so no future change to it can leak input bytes.
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("WEBHOOK_SECRET: secret %d: the part after %q is not valid standard base64", pos, secretPrefix)
		}
		if len(key) < minKeyLen || len(key) > maxKeyLen {
			return nil, fmt.Errorf("WEBHOOK_SECRET: secret %d: key is %d bytes after base64 decoding; want %d to %d bytes",
				pos, len(key), minKeyLen, maxKeyLen)
		}
		for j, prev := range keys {
			// Keys are compared decoded so two spellings of one key are
			// caught too. Constant time is not needed here: both sides
			// are our own configuration, not attacker input.
			if string(prev) == string(key) {
				return nil, fmt.Errorf("WEBHOOK_SECRET: secret %d duplicates secret %d", pos, j+1)
			}
		}
		keys = append(keys, key)
	}
	return &Signer{ks: newSignerKeySet(keys)}, nil
}

// Sign returns the webhook-signature header value for id, ts (truncated to
// whole unix seconds, as the timestamp header carries no fraction) and body:
// one "v1,<base64>" entry per secret, in the order given to ParseSecrets,
// separated by single spaces.
//
// id must not contain '.': the signed content is "{id}.{ts}.{body}", and the
// spec warns that a '.' in the id makes that concatenation ambiguous.
//
// Sign panics if s holds no secrets (a zero Signer), because sending a
// webhook with an empty signature is a bug that should not reach the wire.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	if s == nil || s.ks == nil || len(s.ks.keys) == 0 {
		panic("webhook: Sign called on a Signer with no secrets; use ParseSecrets")
	}
	unix := ts.Unix()
	const entry = len("v1,") + 44 // 44: a 32-byte MAC in padded base64
	var buf [2 * (entry + 1)]byte // one or two secrets without allocating
	b := buf[:0]
	for i := range s.ks.keys {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, "v1,"...)
		var sum [sha256.Size]byte
		b = base64.StdEncoding.AppendEncode(b, s.ks.sum(i, sum[:0], id, unix, body))
	}
	return string(b)
}

// sum appends HMAC-SHA256(key i, id + "." + unix + "." + body) to dst, with
// a keyed state from the key's pool.
func (ks *signerKeySet) sum(i int, dst []byte, id string, unix int64, body []byte) []byte {
	m := ks.macs[i].Get().(hash.Hash)
	m.Reset()
	writeSigned(m, id, unix, body)
	dst = m.Sum(dst)
	ks.macs[i].Put(m)
	return dst
}

// Canonical forms of the signature headers' names, set without
// canonicalising them again on every request.
var (
	canonicalID        = http.CanonicalHeaderKey(HeaderID)
	canonicalTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonicalSignature = http.CanonicalHeaderKey(HeaderSignature)
)

// Headers sets webhook-id, webhook-timestamp and webhook-signature on h,
// replacing any earlier values, so a retried request re-signed with a fresh
// timestamp carries exactly one of each.
func (s *Signer) Headers(h http.Header, id string, ts time.Time, body []byte) {
	sig := s.Sign(id, ts, body) // first, so a zero Signer panics before h changes
	setDeliveryHeaders(func(name, v string) { h[name] = []string{v} }, id, ts, sig)
}

// setDeliveryHeaders sets, with set, webhook-id and webhook-timestamp, and
// webhook-signature to sig unless it is empty (an unsigned request still
// carries the id receivers deduplicate on). set takes canonical names.
func setDeliveryHeaders(set func(name, v string), id string, ts time.Time, sig string) {
	set(canonicalID, id)
	set(canonicalTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if sig != "" {
		set(canonicalSignature, sig)
	}
}

// String describes the Signer without revealing its keys, so logging it by
// accident leaks nothing. Only the number of secrets is shown, which helps
// to tell whether a rotation is in progress.
//
// String, GoString and Format use value receivers so that both Signer and
// *Signer values are covered.
func (s Signer) String() string {
	n := 0
	if s.ks != nil {
		n = len(s.ks.keys)
	}
	return fmt.Sprintf("webhook.Signer(%d secrets)", n)
}

// GoString returns the same text as String, so %#v, which would otherwise
// dump the struct, reveals no keys either.
func (s Signer) GoString() string { return s.String() }

// Format implements fmt.Formatter so every verb and flag (%v, %+v, %#v, %s,
// %x, %d, ...) prints the String text; without it, verbs such as %x or %d
// would format the fields by reflection.
func (s Signer) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, s.String())
}

// signMAC computes HMAC-SHA256(key, id + "." + unix + "." + body) without
// building the concatenated message, since bodies can be large.
func signMAC(key []byte, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	writeSigned(m, id, unix, body)
	return m.Sum(nil)
}

// writeSigned writes the signed content, id + "." + unix + "." + body, to m.
func writeSigned(m hash.Hash, id string, unix int64, body []byte) {
	var buf [22]byte // ".", up to 20 characters of int64, "."
	sep := append(buf[:0], '.')
	sep = strconv.AppendInt(sep, unix, 10)
	sep = append(sep, '.')
	_, _ = io.WriteString(m, id)
	_, _ = m.Write(sep)
	_, _ = m.Write(body)
}

// Sentinel errors returned (wrapped, with detail) by Verify; test for them
// with errors.Is.
var (
	// ErrSignature means the request could not be authenticated: the
	// webhook-id or webhook-signature header is missing, or no v1 entry in
	// webhook-signature matches the body under the secret.
	ErrSignature = errors.New("webhook: no valid signature")
	// ErrTimestamp means webhook-timestamp is missing or not a canonical
	// decimal number, or the (authentic) timestamp is further from now
	// than the tolerance, i.e. a possible replay or clock skew.
	ErrTimestamp = errors.New("webhook: bad timestamp")
)

// Verify is what a receiver does: it checks that the request carries
// webhook-id, webhook-timestamp and webhook-signature, that at least one v1
// signature in webhook-signature matches body under secret (a single
// `whsec_…`), and that webhook-timestamp is within tolerance of now in
// either direction (a clock running ahead is as suspect as a stale replay).
// now is a parameter rather than time.Now so callers and tests control it.
//
// Failures wrap ErrSignature or ErrTimestamp (see there). An invalid secret
// yields an error wrapping neither, since it is a configuration problem, not
// a bad request. Error texts never include the secret or signatures.
//
// Signature entries with another version (such as "v1a" for the asymmetric
// scheme) or that are malformed are skipped rather than rejected, as the
// spec has consumers try each entry until one matches; this keeps Verify
// working when a sender adds signatures of a newer scheme.
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if len(strings.Fields(secret)) != 1 {
		return errors.New("webhook: verify: want exactly one whsec_ secret")
	}
	s, err := ParseSecrets(secret)
	if err != nil {
		return fmt.Errorf("webhook: verify: %w", err)
	}
	key := s.ks.keys[0]

	id := h.Get(HeaderID)
	if id == "" {
		return fmt.Errorf("%w: missing %s header", ErrSignature, HeaderID)
	}
	tsText := h.Get(HeaderTimestamp)
	if tsText == "" {
		return fmt.Errorf("%w: missing %s header", ErrTimestamp, HeaderTimestamp)
	}
	sigs := h.Get(HeaderSignature)
	if strings.TrimSpace(sigs) == "" {
		return fmt.Errorf("%w: missing %s header", ErrSignature, HeaderSignature)
	}

	// The HMAC covers the header text exactly as received, so accept only
	// the canonical decimal form (no sign, leading zeros or spaces), the
	// one form in which the signed text and the parsed number agree.
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || unix < 0 || strconv.FormatInt(unix, 10) != tsText {
		return fmt.Errorf("%w: %s is not a decimal unix time in seconds", ErrTimestamp, HeaderTimestamp)
	}

	want := []byte(base64.StdEncoding.EncodeToString(signMAC(key, id, unix, body)))
	matched := false
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		// hmac.Equal compares in constant time so response timing cannot
		// be used to guess a valid signature byte by byte.
		if hmac.Equal([]byte(sig), want) {
			matched = true
			break
		}
	}
	if !matched {
		return fmt.Errorf("%w: no v1 entry in %s matches", ErrSignature, HeaderSignature)
	}

	// Freshness is checked after authenticity so that ErrTimestamp for an
	// out-of-range time reliably means a genuine but replayed or skewed
	// request, not merely noise from a forged one.
	d := now.Sub(time.Unix(unix, 0))
	if d > tolerance {
		return fmt.Errorf("%w: %s is %v in the past; tolerance is %v", ErrTimestamp, HeaderTimestamp, d.Round(time.Second), tolerance)
	}
	if d < -tolerance {
		return fmt.Errorf("%w: %s is %v in the future; tolerance is %v", ErrTimestamp, HeaderTimestamp, d.Abs().Round(time.Second), tolerance)
	}
	return nil
}
