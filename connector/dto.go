package connector

import (
	"encoding/json"
)

// The DTOs below are hand-written subsets of the Connector's (runtime-types
// 7.5.x, see EVENTS.md §3): only the fields the mesh reads are typed. Each
// keeps the object's JSON exactly as received in Raw, because the sync
// poller publishes it as the event's data, and an event must carry what the
// Connector sent, not what this package happens to know of it. Each also
// implements json.Unmarshaler, so a webhook's data decodes the same way.

// Relationship statuses (RelationshipDTO.status).
const (
	StatusPending          = "Pending"
	StatusActive           = "Active"
	StatusRejected         = "Rejected"
	StatusRevoked          = "Revoked"
	StatusTerminated       = "Terminated"
	StatusDeletionProposed = "DeletionProposed"
)

// Audit-log reasons the mesh and connectortest use (RelationshipAuditLogEntryReason).
const (
	ReasonCreation             = "Creation"
	ReasonAcceptanceOfCreation = "AcceptanceOfCreation"
)

// Message is a MessageDTO.
type Message struct {
	// ID is the message id, "MSG" and 17 characters.
	ID string `json:"id"`
	// IsOwn is true for messages this Connector sent.
	IsOwn bool `json:"isOwn"`
	// CreatedBy is the sender's address.
	CreatedBy string `json:"createdBy"`
	// CreatedAt is when the Backbone received the message (ISO 8601).
	CreatedAt string `json:"createdAt"`
	// Recipients lists the recipients and what each has received.
	Recipients []Recipient `json:"recipients"`
	// Raw is the MessageDTO exactly as received.
	Raw json.RawMessage `json:"-"`
}

// Recipient is one entry of MessageDTO.recipients.
type Recipient struct {
	// Address is the recipient's address.
	Address string `json:"address"`
	// ReceivedAt is when the recipient fetched the message; empty until then.
	ReceivedAt string `json:"receivedAt"`
	// RelationshipID is the relationship to the recipient, if any.
	RelationshipID string `json:"relationshipId"`
}

// UnmarshalJSON decodes a MessageDTO and keeps a copy of data in Raw.
func (m *Message) UnmarshalJSON(data []byte) error {
	type plain Message // without this method, so no recursion
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*m = Message(p)
	m.Raw = keep(data)
	return nil
}

// Relationship is a RelationshipDTO. Before Connector v5 the DTO had
// `changes` and `template` instead of `auditLog` and `templateId`; both
// shapes decode.
type Relationship struct {
	// ID is the relationship id, "REL" and 17 characters.
	ID string `json:"id"`
	// TemplateID is the relationship template's id ("RLT…"); before v5,
	// taken from template.id.
	TemplateID string `json:"templateId"`
	// Status is one of the Status* constants.
	Status string `json:"status"`
	// Peer is the other identity's address.
	Peer string `json:"peer"`
	// AuditLog records every status change, oldest first (v5 and later).
	AuditLog []AuditEntry `json:"auditLog"`
	// Changes are the relationship changes of Connectors before v5, kept
	// undecoded: only their number matters to the mesh (AuditLen).
	Changes []json.RawMessage `json:"changes"`
	// Raw is the RelationshipDTO exactly as received.
	Raw json.RawMessage `json:"-"`
}

// AuditEntry is one entry of RelationshipDTO.auditLog.
type AuditEntry struct {
	// CreatedAt is when the change happened (ISO 8601).
	CreatedAt string `json:"createdAt"`
	// CreatedBy is the address of the identity that made the change.
	CreatedBy string `json:"createdBy"`
	// Reason is what happened, e.g. ReasonCreation.
	Reason string `json:"reason"`
	// OldStatus is the status before; empty for the creation.
	OldStatus string `json:"oldStatus"`
	// NewStatus is the status after.
	NewStatus string `json:"newStatus"`
}

// UnmarshalJSON decodes a RelationshipDTO and keeps a copy of data in Raw.
func (r *Relationship) UnmarshalJSON(data []byte) error {
	type plain Relationship
	var p struct {
		plain
		// Template is the pre-v5 embedded RelationshipTemplateDTO.
		Template *struct {
			ID string `json:"id"`
		} `json:"template"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*r = Relationship(p.plain)
	if r.TemplateID == "" && p.Template != nil {
		r.TemplateID = p.Template.ID
	}
	r.Raw = keep(data)
	return nil
}

// AuditLen is the number of recorded status changes: the length of
// auditLog, or of changes for a Connector before v5. Together with ID and
// Status it tells one relationshipChanged event from the next (the event
// identity in DESIGN.md).
func (r Relationship) AuditLen() int {
	if len(r.AuditLog) == 0 && len(r.Changes) > 0 {
		return len(r.Changes)
	}
	return len(r.AuditLog)
}

// Request is a LocalRequestDTO.
type Request struct {
	// ID is the request id, "REQ" and 17 characters.
	ID string `json:"id"`
	// Status is Draft, Open, DecisionRequired, ManualDecisionRequired,
	// Decided, Completed or Expired.
	Status string `json:"status"`
	// Peer is the address of the identity that sent (incoming) or
	// receives (outgoing) the request.
	Peer string `json:"peer"`
	// IsOwn is true for outgoing requests.
	IsOwn bool `json:"isOwn"`
	// CreatedAt is when the request was created locally (ISO 8601).
	CreatedAt string `json:"createdAt"`
	// Raw is the LocalRequestDTO exactly as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a LocalRequestDTO and keeps a copy of data in Raw.
func (q *Request) UnmarshalJSON(data []byte) error {
	type plain Request
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*q = Request(p)
	q.Raw = keep(data)
	return nil
}

// IdentityInfo is the Connector's own identity (GET /Account/IdentityInfo).
type IdentityInfo struct {
	// Address is the Connector's address, a DID such as
	// did:e:<backbone-host>:dids:<22 hex>.
	Address string `json:"address"`
	// PublicKey is the identity's public signing key.
	PublicKey string `json:"publicKey"`
}

// keep returns a copy of data: an Unmarshaler's input belongs to the
// decoder and may be overwritten after the call.
func keep(data []byte) json.RawMessage {
	return append(json.RawMessage(nil), data...)
}
