package router

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// KeyKind names the rule that derives an event's identity key from its data
// (DESIGN.md, "Event identity"). Id-keyed rules exist only where the sync
// poller must reproduce the id the webhook path gave an event; everywhere
// else the payload itself tells events apart.
type KeyKind int

// The identity rules.
const (
	// KeyCanonical: canonical JSON of data (keys sorted, no white space).
	KeyCanonical KeyKind = iota
	// KeyMessageID: data.id of a MessageDTO.
	KeyMessageID
	// KeyRelationship: data.id, the number of audit-log entries (auditLog,
	// or changes before v5) and data.status of a RelationshipDTO.
	KeyRelationship
	// KeyRequestID: data.id of a LocalRequestDTO.
	KeyRequestID
	// KeyRequestStatus: data.request.id and data.newStatus.
	KeyRequestStatus
	// KeyUnique: a fresh value, never deduplicated: events without data and
	// events whose payload repeats for distinct events.
	KeyUnique
)

func (k KeyKind) String() string {
	switch k {
	case KeyCanonical:
		return "canonical-json"
	case KeyMessageID:
		return "message-id"
	case KeyRelationship:
		return "relationship-id+audit-log-length+status"
	case KeyRequestID:
		return "request-id"
	case KeyRequestStatus:
		return "request-id+new-status"
	case KeyUnique:
		return "unique"
	}
	return "KeyKind(" + strconv.Itoa(int(k)) + ")"
}

// KeyKindOf returns the identity rule of a namespace.
func KeyKindOf(namespace string) KeyKind {
	switch namespace {
	case "transport.messageReceived", "transport.messageSent":
		return KeyMessageID
	case "transport.relationshipChanged":
		return KeyRelationship
	case "consumption.incomingRequestReceived":
		return KeyRequestID
	}
	if strings.HasPrefix(namespace, "consumption.") && strings.HasSuffix(namespace, "RequestStatusChanged") {
		return KeyRequestStatus
	}
	if strings.HasPrefix(namespace, RelationshipEventPrefix) || strings.HasPrefix(namespace, "runtime.") {
		return KeyUnique
	}
	return KeyCanonical
}

// IdentityKey returns the key that identifies an event of namespace with
// data, or unique=true when the event must get a fresh id. Data that lacks
// the fields an id-keyed rule needs (a malformed or future DTO) falls back to
// its canonical JSON rather than being refused: the event is kept, and
// distinct payloads still get distinct ids. Events without data (nil, empty
// or JSON null) are unique. Data must be valid JSON, as every caller has
// already parsed it; the canonical rule reports invalid JSON as an error.
func IdentityKey(namespace string, data []byte) (key string, unique bool, err error) {
	kind := KeyKindOf(namespace)
	if kind == KeyUnique || noData(data) {
		return "", true, nil
	}
	switch kind {
	case KeyMessageID, KeyRequestID:
		// The hot path (every messageReceived): one light scan instead of
		// encoding/json's validate-then-decode.
		if id, ok := topLevelString(data, "id"); ok && id != "" {
			return id, false, nil
		}
	case KeyRelationship:
		var v struct {
			ID       string            `json:"id"`
			Status   string            `json:"status"`
			AuditLog []json.RawMessage `json:"auditLog"`
			Changes  []json.RawMessage `json:"changes"` // before v5
		}
		if json.Unmarshal(data, &v) == nil && v.ID != "" && v.Status != "" {
			n := len(v.AuditLog)
			if v.AuditLog == nil {
				n = len(v.Changes)
			}
			return v.ID + "\n" + strconv.Itoa(n) + "\n" + v.Status, false, nil
		}
	case KeyRequestStatus:
		var v struct {
			Request struct {
				ID string `json:"id"`
			} `json:"request"`
			NewStatus string `json:"newStatus"`
		}
		if json.Unmarshal(data, &v) == nil && v.Request.ID != "" && v.NewStatus != "" {
			return v.Request.ID + "\n" + v.NewStatus, false, nil
		}
	}
	c, err := CanonicalJSON(data)
	if err != nil {
		return "", false, err
	}
	return string(c), false, nil
}

func noData(data []byte) bool {
	d := bytes.TrimSpace(data)
	return len(d) == 0 || string(d) == "null"
}

// EventID returns ce-id for an event: lower-case hex of the first 16 bytes
// of SHA-256 over source "\n" namespace "\n" key. For a unique event the key
// is RandomKey().
func EventID(source, namespace string, data []byte) (string, error) {
	key, unique, err := IdentityKey(namespace, data)
	if err != nil {
		return "", fmt.Errorf("event identity of %s: %w", namespace, err)
	}
	if unique {
		key = RandomKey()
	}
	return HashID(source, namespace, key), nil
}

// SQLEventID returns ce-id of a row of an SQL event table: the key is the
// table name and the row id.
func SQLEventID(source, table, rowID string) string {
	return HashID(source, "sql", table+"\n"+rowID)
}

// HashID hashes source, namespace and key into a ce-id.
func HashID(source, namespace, key string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{'\n'})
	h.Write([]byte(namespace))
	h.Write([]byte{'\n'})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// RandomKey returns 128 random bits in hex, the key of a unique event.
func RandomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}

// CanonicalJSON re-encodes data with object keys sorted, no insignificant
// white space and numbers kept as written, so two encodings of one value
// give the same bytes.
func CanonicalJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("data is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("data is not valid JSON: more than one value")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep <, > and & as they are: escaping would only add bytes
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
