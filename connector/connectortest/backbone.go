package connectortest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/eventmesh/eventmesh/connector"
)

// AddIncomingMessage puts a Mail from the peer from to the double on the
// Backbone, created at createdAt (zero: now). The next sync makes it
// visible and fires transport.messageReceived. The recipient entry names
// the relationship with from, if there is one.
func (d *Server) AddIncomingMessage(from, subject string, createdAt time.Time) connector.Message {
	now := time.Now().UTC()
	if createdAt.IsZero() {
		createdAt = now
	}
	d.mu.Lock()
	o := d.newMessage(from, createdAt.UTC(), now, d.mail(subject))
	d.mu.Unlock()
	return toMessage(o.raw)
}

// AddIncomingMessages puts n Mails from the peer from on the Backbone,
// created now, as n calls of AddIncomingMessage would, without decoding
// each one back: cheap enough for a double of a Connector holding
// hundreds of thousands of messages (benchmarks).
func (d *Server) AddIncomingMessages(from, subject string, n int) {
	now := time.Now().UTC()
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.mail(subject)
	for range n {
		d.newMessage(from, now, now, c)
	}
}

// mail is the content of a Mail to the double; d.mu held.
func (d *Server) mail(subject string) content {
	return content{
		Type: "Mail", To: []string{d.address}, Subject: subject,
		Body: "This message was sent to " + d.address + ".", BodyFormat: "PlainText",
	}
}

// newMessage adds an incoming message, visible at the next sync; d.mu held.
func (d *Server) newMessage(from string, createdAt, now time.Time, c content) *object[messageDTO] {
	received := createdAt
	if now.After(received) {
		received = now
	}
	o := newObject(messageDTO{
		ID: newID("MSG"), IsOwn: false, Content: c, CreatedBy: from, CreatedByDevice: newID("DVC"),
		Recipients: []recipientDTO{{
			Address: d.address, ReceivedAt: received.Format(isoMillis), ReceivedByDevice: d.device,
			RelationshipID: d.relationshipWith(from),
		}},
		CreatedAt: createdAt.Format(isoMillis), Attachments: []string{},
	})
	d.messages = append(d.messages, o)
	d.pending = append(d.pending, func(time.Time) []event {
		o.visible = true
		return []event{{EventMessageReceived, o.raw}}
	})
	return o
}

// relationshipWith returns the id of the newest relationship with peer,
// synced or not, or ""; d.mu held.
func (d *Server) relationshipWith(peer string) string {
	for i := len(d.rels) - 1; i >= 0; i-- {
		if d.rels[i].dto.Peer == peer {
			return d.rels[i].dto.ID
		}
	}
	return ""
}

// AddIncomingRelationship puts a relationship the peer created from our
// template templateID (empty: a new template id) on the Backbone: Pending,
// with one audit-log entry Creation by the peer. The next sync makes it
// visible and fires transport.relationshipChanged.
func (d *Server) AddIncomingRelationship(peer, templateID string) connector.Relationship {
	return d.addRelationship(peer, templateID, peer)
}

// AddOutgoingRelationship puts a relationship the double created from the
// peer's template on the Backbone: Pending, created by the double's own
// address, so only the peer can accept it (PeerAcceptRelationship). Like
// every Add*, it shows after the next sync.
func (d *Server) AddOutgoingRelationship(peer, templateID string) connector.Relationship {
	return d.addRelationship(peer, templateID, d.address)
}

func (d *Server) addRelationship(peer, templateID, creator string) connector.Relationship {
	if templateID == "" {
		templateID = newID("RLT")
	}
	now := time.Now().UTC()
	device := d.device
	if creator != d.address {
		device = newID("DVC")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o := newObject(relationshipDTO{
		ID: newID("REL"), TemplateID: templateID, Status: connector.StatusPending, Peer: peer,
		PeerIdentity: identityDTO{Address: peer, PublicKey: d.peerKey(peer)},
		CreationContent: creationContent{
			Type: "RelationshipCreationContent",
			Response: responseDTO{
				Type: "Response", Result: "Accepted", RequestID: newID("REQ"), Items: []json.RawMessage{},
			},
		},
		AuditLog: []auditDTO{{
			CreatedAt: now.Format(isoMillis), CreatedBy: creator, CreatedByDevice: device,
			Reason: connector.ReasonCreation, NewStatus: connector.StatusPending,
		}},
	})
	d.rels = append(d.rels, o)
	d.relByID[o.dto.ID] = o
	d.pending = append(d.pending, func(time.Time) []event {
		o.visible = true
		return []event{{EventRelationshipChanged, o.raw}}
	})
	return toRelationship(o.raw)
}

// peerKey returns the public key of peer, made up on first use; d.mu held.
func (d *Server) peerKey(peer string) string {
	k, ok := d.peerKeys[peer]
	if !ok {
		k = newPublicKey()
		d.peerKeys[peer] = k
	}
	return k
}

// PeerAcceptRelationship makes the peer accept an outgoing pending
// relationship on the Backbone (an audit-log entry AcceptanceOfCreation by
// the peer, status Active). The next sync applies it and fires
// transport.relationshipChanged. It fails for an unknown id and for a
// relationship that is not Pending or was created by the peer.
func (d *Server) PeerAcceptRelationship(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.relationship(id, false)
	switch {
	case o == nil:
		return fmt.Errorf("connector double: no relationship %s", id)
	case o.dto.Status != connector.StatusPending || d.accepting[id]:
		return fmt.Errorf("connector double: relationship %s is not %s (or already accepted by the peer)", id, connector.StatusPending)
	case o.dto.AuditLog[len(o.dto.AuditLog)-1].CreatedBy != d.address:
		return fmt.Errorf("connector double: relationship %s was created by the peer; accept it over REST", id)
	}
	peer := o.dto.Peer
	d.accepting[id] = true
	d.pending = append(d.pending, func(now time.Time) []event {
		delete(d.accepting, id)
		if o.dto.Status != connector.StatusPending {
			return nil // revoked meanwhile; the double has no route for that yet
		}
		o.visible = true
		o.dto.Status = connector.StatusActive
		o.dto.AuditLog = append(o.dto.AuditLog, auditDTO{
			CreatedAt: now.Format(isoMillis), CreatedBy: peer, CreatedByDevice: newID("DVC"),
			Reason: connector.ReasonAcceptanceOfCreation, OldStatus: connector.StatusPending, NewStatus: connector.StatusActive,
		})
		o.encode()
		return []event{{EventRelationshipChanged, o.raw}}
	})
	return nil
}

// AddIncomingRequest puts a Request from peer on the Backbone, inside a
// Message as requests from peers arrive. The next sync makes both visible
// and fires transport.messageReceived for the message, then
// consumption.incomingRequestReceived for the request, which is Open (and
// stays Open: the double has no Decider module to move it on).
func (d *Server) AddIncomingRequest(peer string) connector.Request {
	now := time.Now().UTC()
	reqID := newID("REQ")
	items := []json.RawMessage{json.RawMessage(
		`{"@type":"ReadAttributeRequestItem","mustBeAccepted":true,"query":{"@type":"IdentityAttributeQuery","valueType":"EMailAddress"}}`)}
	d.mu.Lock()
	defer d.mu.Unlock()
	msg := d.newMessage(peer, now, now, content{Type: "Request", ID: reqID, Items: items})
	o := newObject(requestDTO{
		ID: reqID, IsOwn: false, Peer: peer, CreatedAt: now.Format(isoMillis), Status: "Open",
		Content: content{Type: "Request", ID: reqID, Items: items},
		Source:  &sourceDTO{Type: "Message", Reference: msg.dto.ID},
	})
	d.reqs = append(d.reqs, o)
	d.pending = append(d.pending, func(time.Time) []event {
		o.visible = true
		return []event{{EventIncomingRequestReceived, o.raw}}
	})
	return toRequest(o.raw)
}

// SyncNow does what POST /Account/Sync does: applies the Backbone changes
// added since the last sync, in order, and fires their events. A double
// that is down does not sync.
func (d *Server) SyncNow() { d.sync("") }

// sync applies the pending changes and fires their events, with the
// correlation id of the request that asked for the sync (the Connector
// passes x-correlation-id on to the webhooks an HTTP request causes).
func (d *Server) sync(correlationID string) {
	d.mu.Lock()
	if d.down {
		d.mu.Unlock()
		return
	}
	now := time.Now().UTC()
	var evs []event
	for _, change := range d.pending {
		evs = append(evs, change(now)...)
	}
	d.pending = nil
	d.mu.Unlock()
	d.fire(evs, correlationID)
}

// Simulate plays a Connector in use until ctx ends: every interval it puts
// a realistic change on the Backbone (mostly incoming messages from peers,
// also new incoming relationships, requests, and peers accepting our own
// relationship requests) and syncs, so events and webhooks flow. Used by
// `eventmesh demo`.
func (d *Server) Simulate(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.simulateStep()
		d.SyncNow()
	}
}

var subjects = []string{
	"Invoice 2026-03", "Your contract", "Appointment on Tuesday", "Welcome aboard",
	"Updated terms & conditions", "Reminder: documents missing", "Re: your question",
}

// simulateStep adds one random Backbone change.
func (d *Server) simulateStep() {
	d.mu.Lock()
	var active, all, ownPending []string
	for _, r := range d.rels {
		if !r.visible {
			continue
		}
		all = append(all, r.dto.Peer)
		switch {
		case r.dto.Status == connector.StatusActive:
			active = append(active, r.dto.Peer)
		case r.dto.Status == connector.StatusPending && r.dto.AuditLog[len(r.dto.AuditLog)-1].CreatedBy == d.address && !d.accepting[r.dto.ID]:
			ownPending = append(ownPending, r.dto.ID)
		}
	}
	d.mu.Unlock()
	peers := active
	if len(peers) == 0 {
		// Nobody accepted anything yet (no auto-accept running): let the
		// pending peers write anyway, so the demo shows messages.
		peers = all
	}
	switch n := rand.IntN(10); {
	case len(peers) == 0 || n < 2:
		d.AddIncomingRelationship(NewAddress(), "")
	case n < 7:
		d.AddIncomingMessage(peers[rand.IntN(len(peers))], subjects[rand.IntN(len(subjects))], time.Time{})
	case n < 9:
		d.AddIncomingRequest(peers[rand.IntN(len(peers))])
	case len(ownPending) > 0:
		d.PeerAcceptRelationship(ownPending[rand.IntN(len(ownPending))])
	default:
		d.AddOutgoingRelationship(NewAddress(), "")
	}
}
