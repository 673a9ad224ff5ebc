package connector

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The double's routes as Calls names them: method and path after the base
// path, ids as {id}.
const (
	RouteSync               = "POST /Account/Sync"
	RouteIdentityInfo       = "GET /Account/IdentityInfo"
	RouteMessages           = "GET /Messages"
	RouteMessage            = "GET /Messages/{id}"
	RouteRelationships      = "GET /Relationships"
	RouteRelationship       = "GET /Relationships/{id}"
	RouteAcceptRelationship = "PUT /Relationships/{id}/Accept"
	RouteIncomingRequests   = "GET /Requests/Incoming"
)

// Namespaces of the events the double fires itself (EVENTS.md §2).
const (
	EventMessageReceived         = "transport.messageReceived"
	EventRelationshipChanged     = "transport.relationshipChanged"
	EventIncomingRequestReceived = "consumption.incomingRequestReceived"
)

// TriggerPlaceholder in a webhook URL is replaced by the event's namespace,
// as the Connector's webhooks module does.
const TriggerPlaceholder = "{{trigger}}"

// Realm is the Backbone host in the double's addresses.
const Realm = "localhost"

// isoMillis is JavaScript's Date.toISOString layout, which the Connector
// uses for every timestamp.
const isoMillis = "2006-01-02T15:04:05.000Z"

// webhookTimeout keeps a hanging receiver from holding a post for ever.
// The Connector sets no timeout at all; a test double must not leak.
const webhookTimeout = 30 * time.Second

// Double is an in-process enmeshed Connector for tests and the demo: a
// real HTTP server on 127.0.0.1 that serves the routes the mesh uses as the
// Connector 7.x spec describes them (API key, envelopes, status codes,
// error codes, list filters), models what is on the Backbone apart from
// what the Connector has synced, and sends webhooks the way the Connector's
// webhooks module does.
//
// Objects added with the Add* methods are "on the Backbone": they become
// visible through the REST routes, and fire their events, only with the
// next sync (POST /Account/Sync or SyncNow), as a real Connector learns of
// them only by syncing. Accepting a relationship over REST takes effect at
// once, as it does on the Connector.
//
// All methods are safe for concurrent use.
type Double struct {
	log       *slog.Logger
	srv       *http.Server
	url       string
	address   string
	publicKey string
	device    string
	hooks     *http.Client
	ctx       context.Context // canceled by Close: aborts webhook posts
	cancel    context.CancelFunc
	closeOnce sync.Once

	mu       sync.Mutex
	idle     *sync.Cond // signaled when inflight drops to 0; uses mu
	apiKey   string
	keyHdr   string
	basePath string
	down     bool
	drop     bool // DropNextAcceptReply
	webhook  *webhookTarget
	inflight int // webhook posts not finished
	sent     int // webhook posts made
	calls    map[string]int
	accepts  map[string]int
	peerKeys map[string]string // peer address → public key
	// accepting holds the relationships a peer accepts at the next sync,
	// so PeerAcceptRelationship cannot queue the same acceptance twice.
	accepting map[string]bool

	// Everything the double knows, visible or not yet synced, in the
	// order added. Only visible objects are served.
	messages []*object[messageDTO]
	rels     []*object[relationshipDTO]
	reqs     []*object[requestDTO]
	// pending are the Backbone changes the next sync applies, in order.
	// Each returns the events it fires.
	pending []func(now time.Time) []event
}

// webhookTarget is the one webhook the double sends to.
type webhookTarget struct {
	url     string
	headers map[string]string
}

// event is one event of the Connector's bus: its namespace and data (nil:
// the event has none, and the webhook body omits "data").
type event struct {
	namespace string
	data      json.RawMessage
}

// object is a stored DTO with its JSON, encoded once per change so every
// route and event serves the same bytes.
type object[T any] struct {
	dto     T
	raw     json.RawMessage
	visible bool
}

func newObject[T any](dto T) *object[T] {
	o := &object[T]{dto: dto}
	o.encode()
	return o
}

func (o *object[T]) encode() { o.raw = encodeJSON(o.dto) }

// NewDouble starts a Connector double on a free port of 127.0.0.1 that
// accepts apiKey in the X-API-KEY header and serves the routes under
// /api/core/v1. Close it when done.
func NewDouble(apiKey string, log *slog.Logger) (*Double, error) {
	if apiKey == "" {
		// The Connector refuses to start without a valid API key.
		return nil, errors.New("connector double: an API key is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("connector double: listen on 127.0.0.1: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Double{
		log:       log.With("component", "connector-double"),
		url:       "http://" + ln.Addr().String(),
		address:   NewAddress(),
		publicKey: newPublicKey(),
		device:    newID("DVC"),
		hooks: &http.Client{
			Timeout: webhookTimeout,
			// The webhooks module sets maxRedirects: 0.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ctx:      ctx,
		cancel:   cancel,
		apiKey:   apiKey,
		keyHdr:   DefaultAPIKeyHeader,
		basePath: DefaultBasePath,
		calls:    map[string]int{},
		accepts:  map[string]int{},
		peerKeys: map[string]string{},

		accepting: map[string]bool{},
	}
	d.idle = sync.NewCond(&d.mu)
	d.srv = &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("connector double stopped serving", "error", err)
		}
	}()
	d.log.Debug("connector double listening", "url", d.url, "address", d.address)
	return d, nil
}

// URL returns the double's base URL, http://127.0.0.1:<port> (CONNECTOR_URL).
func (d *Double) URL() string { return d.url }

// Address returns the double's own identity address, a DID such as
// did:e:localhost:dids:<22 hex>.
func (d *Double) Address() string { return d.address }

// ClientConfig returns a Config that reaches the double with its current
// API key, header and base path, a 5s timeout and 3 attempts.
func (d *Double) ClientConfig() Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Config{URL: d.url, APIKey: d.apiKey, APIKeyHeader: d.keyHdr, BasePath: d.basePath,
		Timeout: 5 * time.Second, Attempts: 3}
}

// Close stops the server, aborts webhook posts in flight and waits for them.
func (d *Double) Close() {
	d.closeOnce.Do(func() {
		d.cancel()
		d.srv.Close()
		d.FlushWebhooks()
	})
}

// SetAPIKey replaces the accepted API key, e.g. to test a rotated key; an
// empty key refuses every request.
func (d *Double) SetAPIKey(k string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.apiKey = k
}

// SetAPIKeyHeader changes the header the API key is read from, as the
// Connector's httpServer.authentication.apiKey.headerName does.
func (d *Double) SetAPIKeyHeader(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keyHdr = name
}

// SetBasePath changes where the routes are served, e.g. /api/v2 to play a
// Connector 3 to 6.
func (d *Double) SetBasePath(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.basePath = strings.TrimRight(p, "/")
}

// SetWebhook makes every event a POST to url ({{trigger}} replaced by the
// namespace) with the given extra headers, as one webhook with trigger **
// in the Connector's webhooks module. An empty url sends none.
func (d *Double) SetWebhook(url string, headers map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if url == "" {
		d.webhook = nil
		return
	}
	h := make(map[string]string, len(headers))
	for k, v := range headers {
		h[k] = v
	}
	d.webhook = &webhookTarget{url: url, headers: h}
}

// SetDown makes the double unavailable: every route answers 503 with an
// error envelope (CodeUnavailable), no sync happens and no webhook is sent
// (events of Emit are lost, as on a Connector that is down). Backbone
// changes added meanwhile wait for the first sync after SetDown(false).
func (d *Double) SetDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

// DropNextAcceptReply makes the next PUT /Relationships/{id}/Accept that
// passes authentication do its work as usual but close the connection
// instead of answering, so the client sees a lost reply.
func (d *Double) DropNextAcceptReply() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drop = true
}

// Calls returns how many requests matched route (one of the Route*
// constants), whatever their outcome (401 and 503 included).
func (d *Double) Calls(route string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[route]
}

// AcceptCalls returns how many PUT /Relationships/{id}/Accept requests
// named id, whatever their outcome.
func (d *Double) AcceptCalls(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.accepts[id]
}

// WebhooksSent returns how many webhook POSTs were made (finished, whatever
// the receiver answered or whether it was reachable). Call FlushWebhooks
// first to count the ones in flight.
func (d *Double) WebhooksSent() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent
}

// FlushWebhooks waits until no webhook POST is in flight, so a test can
// look at what arrived without sleeping.
func (d *Double) FlushWebhooks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.inflight > 0 {
		d.idle.Wait()
	}
}

// NewAddress returns a new random address in the double's realm, for peers.
func NewAddress() string {
	b := make([]byte, 11)
	crand.Read(b)
	return "did:e:" + Realm + ":dids:" + hex.EncodeToString(b)
}

// AddIncomingMessage puts a Mail from the peer from to the double on the
// Backbone, created at createdAt (zero: now). The next sync makes it
// visible and fires transport.messageReceived. The recipient entry names
// the relationship with from, if there is one.
func (d *Double) AddIncomingMessage(from, subject string, createdAt time.Time) Message {
	now := time.Now().UTC()
	if createdAt.IsZero() {
		createdAt = now
	}
	d.mu.Lock()
	o := d.newMessage(from, createdAt.UTC(), now, content{
		Type: "Mail", To: []string{d.address}, Subject: subject,
		Body: "This message was sent to " + d.address + ".", BodyFormat: "PlainText",
	})
	d.mu.Unlock()
	return toMessage(o.raw)
}

// newMessage adds an incoming message, visible at the next sync; d.mu held.
func (d *Double) newMessage(from string, createdAt, now time.Time, c content) *object[messageDTO] {
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
func (d *Double) relationshipWith(peer string) string {
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
func (d *Double) AddIncomingRelationship(peer, templateID string) Relationship {
	return d.addRelationship(peer, templateID, peer)
}

// AddOutgoingRelationship puts a relationship the double created from the
// peer's template on the Backbone: Pending, created by the double's own
// address, so only the peer can accept it (PeerAcceptRelationship). Like
// every Add*, it shows after the next sync.
func (d *Double) AddOutgoingRelationship(peer, templateID string) Relationship {
	return d.addRelationship(peer, templateID, d.address)
}

func (d *Double) addRelationship(peer, templateID, creator string) Relationship {
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
		ID: newID("REL"), TemplateID: templateID, Status: StatusPending, Peer: peer,
		PeerIdentity: identityDTO{Address: peer, PublicKey: d.peerKey(peer)},
		CreationContent: creationContent{
			Type: "RelationshipCreationContent",
			Response: responseDTO{
				Type: "Response", Result: "Accepted", RequestID: newID("REQ"), Items: []json.RawMessage{},
			},
		},
		AuditLog: []auditDTO{{
			CreatedAt: now.Format(isoMillis), CreatedBy: creator, CreatedByDevice: device,
			Reason: ReasonCreation, NewStatus: StatusPending,
		}},
	})
	d.rels = append(d.rels, o)
	d.pending = append(d.pending, func(time.Time) []event {
		o.visible = true
		return []event{{EventRelationshipChanged, o.raw}}
	})
	return toRelationship(o.raw)
}

// peerKey returns the public key of peer, made up on first use; d.mu held.
func (d *Double) peerKey(peer string) string {
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
func (d *Double) PeerAcceptRelationship(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.relationship(id, false)
	switch {
	case o == nil:
		return fmt.Errorf("connector double: no relationship %s", id)
	case o.dto.Status != StatusPending || d.accepting[id]:
		return fmt.Errorf("connector double: relationship %s is not %s (or already accepted by the peer)", id, StatusPending)
	case o.dto.AuditLog[len(o.dto.AuditLog)-1].CreatedBy != d.address:
		return fmt.Errorf("connector double: relationship %s was created by the peer; accept it over REST", id)
	}
	peer := o.dto.Peer
	d.accepting[id] = true
	d.pending = append(d.pending, func(now time.Time) []event {
		delete(d.accepting, id)
		if o.dto.Status != StatusPending {
			return nil // revoked meanwhile; the double has no route for that yet
		}
		o.visible = true
		o.dto.Status = StatusActive
		o.dto.AuditLog = append(o.dto.AuditLog, auditDTO{
			CreatedAt: now.Format(isoMillis), CreatedBy: peer, CreatedByDevice: newID("DVC"),
			Reason: ReasonAcceptanceOfCreation, OldStatus: StatusPending, NewStatus: StatusActive,
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
func (d *Double) AddIncomingRequest(peer string) Request {
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
func (d *Double) SyncNow() { d.sync("") }

// sync applies the pending changes and fires their events, with the
// correlation id of the request that asked for the sync (the Connector
// passes x-correlation-id on to the webhooks an HTTP request causes).
func (d *Double) sync(correlationID string) {
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

// Emit fires an arbitrary event, e.g. "runtime.modulesStarted" with nil
// data or "consumption.attributeCreated" with a LocalAttributeDTO. data may
// be nil (no "data" key in the webhook body), JSON bytes (json.RawMessage
// or []byte, sent as they are) or a value to marshal.
func (d *Double) Emit(namespace string, data any) {
	if namespace == "" {
		d.log.Warn("connector double: Emit without a namespace ignored")
		return
	}
	var raw json.RawMessage
	switch v := data.(type) {
	case nil:
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		raw = encodeJSON(v)
	}
	if raw != nil && !json.Valid(raw) {
		d.log.Warn("connector double: Emit with data that is not JSON ignored", "namespace", namespace)
		return
	}
	d.fire([]event{{namespace, raw}}, "")
}

// fire sends one webhook POST per event, concurrently and without waiting,
// as the webhooks module does (handlers of the in-memory bus are not
// awaited, so arrival order is not guaranteed).
func (d *Double) fire(evs []event, correlationID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down || d.webhook == nil || len(evs) == 0 {
		return
	}
	w := d.webhook
	d.inflight += len(evs)
	for _, ev := range evs {
		go d.post(w, ev, correlationID)
	}
}

// post makes one webhook POST: no retry, errors and non-2xx only logged.
func (d *Double) post(w *webhookTarget, ev event, correlationID string) {
	defer func() {
		d.mu.Lock()
		d.sent++
		d.inflight--
		if d.inflight == 0 {
			d.idle.Broadcast()
		}
		d.mu.Unlock()
	}()
	url := strings.ReplaceAll(w.url, TriggerPlaceholder, ev.namespace)
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, url, bytes.NewReader(webhookBody(ev)))
	if err != nil {
		d.log.Warn("connector double: webhook URL unusable", "trigger", ev.namespace, "error", err)
		return
	}
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	if correlationID != "" {
		req.Header.Set("x-correlation-id", correlationID)
	}
	// What axios sends for a JSON body.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/plain, */*")
	resp, err := d.hooks.Do(req)
	if err != nil {
		d.log.Warn("connector double: webhook request failed", "trigger", ev.namespace, "error", err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		d.log.Warn("connector double: webhook returned an unexpected status; expected 200 to 299",
			"trigger", ev.namespace, "status", resp.StatusCode)
	}
}

// webhookBody is JSON.stringify({data, trigger}): "data" first, and left
// out when the event has none.
func webhookBody(ev event) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if ev.data != nil {
		b.WriteString(`"data":`)
		b.Write(ev.data)
		b.WriteByte(',')
	}
	b.WriteString(`"trigger":`)
	b.Write(encodeJSON(ev.namespace))
	b.WriteByte('}')
	return b.Bytes()
}

// Simulate plays a Connector in use until ctx ends: every interval it puts
// a realistic change on the Backbone (mostly incoming messages from peers,
// also new incoming relationships, requests, and peers accepting our own
// relationship requests) and syncs, so events and webhooks flow. Used by
// `eventmesh demo`.
func (d *Double) Simulate(ctx context.Context, every time.Duration) {
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
func (d *Double) simulateStep() {
	d.mu.Lock()
	var active, all, ownPending []string
	for _, r := range d.rels {
		if !r.visible {
			continue
		}
		all = append(all, r.dto.Peer)
		switch {
		case r.dto.Status == StatusActive:
			active = append(active, r.dto.Peer)
		case r.dto.Status == StatusPending && r.dto.AuditLog[len(r.dto.AuditLog)-1].CreatedBy == d.address && !d.accepting[r.dto.ID]:
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

func toMessage(raw []byte) Message {
	var m Message
	json.Unmarshal(raw, &m)
	return m
}

func toRelationship(raw []byte) Relationship {
	var r Relationship
	json.Unmarshal(raw, &r)
	return r
}

func toRequest(raw []byte) Request {
	var q Request
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
