package connectortest

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/eventmesh/eventmesh/connector"
)

// The DTOs as the double writes them, fields in the Runtime's order.

type messageDTO struct {
	ID              string         `json:"id"`
	IsOwn           bool           `json:"isOwn"`
	Content         content        `json:"content"`
	CreatedBy       string         `json:"createdBy"`
	CreatedByDevice string         `json:"createdByDevice"`
	Recipients      []recipientDTO `json:"recipients"`
	CreatedAt       string         `json:"createdAt"`
	Attachments     []string       `json:"attachments"`
}

type recipientDTO struct {
	Address          string `json:"address"`
	ReceivedAt       string `json:"receivedAt,omitempty"`
	ReceivedByDevice string `json:"receivedByDevice,omitempty"`
	RelationshipID   string `json:"relationshipId,omitempty"`
}

// content is a Mail or a Request, whichever fields are set.
type content struct {
	Type       string            `json:"@type"`
	ID         string            `json:"id,omitempty"`
	To         []string          `json:"to,omitempty"`
	Subject    string            `json:"subject,omitempty"`
	Body       string            `json:"body,omitempty"`
	BodyFormat string            `json:"bodyFormat,omitempty"`
	Items      []json.RawMessage `json:"items,omitempty"`
}

type relationshipDTO struct {
	ID              string          `json:"id"`
	TemplateID      string          `json:"templateId"`
	Status          string          `json:"status"`
	Peer            string          `json:"peer"`
	PeerIdentity    identityDTO     `json:"peerIdentity"`
	CreationContent creationContent `json:"creationContent"`
	AuditLog        []auditDTO      `json:"auditLog"`
}

type identityDTO struct {
	Address   string `json:"address"`
	PublicKey string `json:"publicKey"`
}

type creationContent struct {
	Type     string      `json:"@type"`
	Response responseDTO `json:"response"`
}

type responseDTO struct {
	Type      string            `json:"@type"`
	Result    string            `json:"result"`
	RequestID string            `json:"requestId"`
	Items     []json.RawMessage `json:"items"`
}

type auditDTO struct {
	CreatedAt       string `json:"createdAt"`
	CreatedBy       string `json:"createdBy"`
	CreatedByDevice string `json:"createdByDevice,omitempty"`
	Reason          string `json:"reason"`
	OldStatus       string `json:"oldStatus,omitempty"`
	NewStatus       string `json:"newStatus"`
}

type requestDTO struct {
	ID        string     `json:"id"`
	IsOwn     bool       `json:"isOwn"`
	Peer      string     `json:"peer"`
	CreatedAt string     `json:"createdAt"`
	Status    string     `json:"status"`
	Content   content    `json:"content"`
	Source    *sourceDTO `json:"source,omitempty"`
}

type sourceDTO struct {
	Type      string `json:"type"`
	Reference string `json:"reference"`
}

// encodeJSON marshals v the way JSON.stringify does: compact, and without
// Go's escaping of <, > and & (so the bytes differ from a Go re-encoding,
// which keeps the tests of Raw honest).
func encodeJSON(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("connector double: encode %T: %v", v, err)) // only our own DTOs come here
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func toMessage(raw []byte) connector.Message {
	var m connector.Message
	json.Unmarshal(raw, &m)
	return m
}

func toRelationship(raw []byte) connector.Relationship {
	var r connector.Relationship
	json.Unmarshal(raw, &r)
	return r
}

func toRequest(raw []byte) connector.Request {
	var q connector.Request
	json.Unmarshal(raw, &q)
	return q
}

// idChars are the characters of the random part of ids.
const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newID returns prefix and 17 random characters, like the Runtime's ids.
func newID(prefix string) string {
	return prefix + randomString(idChars, 17)
}

func randomString(chars string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return string(b)
}

// newPublicKey returns a made-up public key in the Connector's shape:
// base64url of {"pub":…,"alg":3}.
func newPublicKey() string {
	k := make([]byte, 32)
	crand.Read(k)
	j := `{"pub":"` + base64.RawURLEncoding.EncodeToString(k) + `","alg":3}`
	return base64.RawURLEncoding.EncodeToString([]byte(j))
}
