package connectortest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/connector"
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

// Realm is the Backbone host in the double's addresses.
const Realm = "localhost"

// isoMillis is JavaScript's Date.toISOString layout, which the Connector
// uses for every timestamp.
const isoMillis = "2006-01-02T15:04:05.000Z"

// webhookTimeout keeps a hanging receiver from holding a post for ever.
// The Connector sets no timeout at all; a test double must not leak.
const webhookTimeout = 30 * time.Second

// Server is an in-process enmeshed Connector for tests and the demo: a
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
type Server struct {
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
	relByID  map[string]*object[relationshipDTO] // rels by id: thousands of them in the benchmark
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

// NewServer starts a Connector double on a free port of 127.0.0.1 that
// accepts apiKey in the X-API-KEY header and serves the routes under
// /api/core/v1. Close it when done.
func NewServer(apiKey string, log *slog.Logger) (*Server, error) {
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
	d := &Server{
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
		keyHdr:   connector.DefaultAPIKeyHeader,
		basePath: connector.DefaultBasePath,
		calls:    map[string]int{},
		accepts:  map[string]int{},
		peerKeys: map[string]string{},
		relByID:  map[string]*object[relationshipDTO]{},

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
func (d *Server) URL() string { return d.url }

// Address returns the double's own identity address, a DID such as
// did:e:localhost:dids:<22 hex>.
func (d *Server) Address() string { return d.address }

// ClientConfig returns a Config that reaches the double with its current
// API key, header and base path, a 5s timeout and 3 attempts.
func (d *Server) ClientConfig() connector.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return connector.Config{URL: d.url, APIKey: d.apiKey, APIKeyHeader: d.keyHdr, BasePath: d.basePath,
		Timeout: 5 * time.Second, Attempts: 3}
}

// Close stops the server, aborts webhook posts in flight and waits for them.
func (d *Server) Close() {
	d.closeOnce.Do(func() {
		d.cancel()
		d.srv.Close()
		d.FlushWebhooks()
	})
}

// SetAPIKey replaces the accepted API key, e.g. to test a rotated key; an
// empty key refuses every request.
func (d *Server) SetAPIKey(k string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.apiKey = k
}

// SetAPIKeyHeader changes the header the API key is read from, as the
// Connector's httpServer.authentication.apiKey.headerName does.
func (d *Server) SetAPIKeyHeader(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keyHdr = name
}

// SetBasePath changes where the routes are served, e.g. /api/v2 to play a
// Connector 3 to 6.
func (d *Server) SetBasePath(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.basePath = strings.TrimRight(p, "/")
}

// SetWebhook makes every event a POST to url ({{trigger}} replaced by the
// namespace) with the given extra headers, as one webhook with trigger **
// in the Connector's webhooks module. An empty url sends none.
func (d *Server) SetWebhook(url string, headers map[string]string) {
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
// error envelope (connector.CodeUnavailable), no sync happens and no webhook is sent
// (events of Emit are lost, as on a Connector that is down). Backbone
// changes added meanwhile wait for the first sync after SetDown(false).
func (d *Server) SetDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

// DropNextAcceptReply makes the next PUT /Relationships/{id}/Accept that
// passes authentication do its work as usual but close the connection
// instead of answering, so the client sees a lost reply.
func (d *Server) DropNextAcceptReply() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drop = true
}

// Calls returns how many requests matched route (one of the Route*
// constants), whatever their outcome (401 and 503 included).
func (d *Server) Calls(route string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[route]
}

// AcceptCalls returns how many PUT /Relationships/{id}/Accept requests
// named id, whatever their outcome.
func (d *Server) AcceptCalls(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.accepts[id]
}

// WebhooksSent returns how many webhook POSTs were made (finished, whatever
// the receiver answered or whether it was reachable). Call FlushWebhooks
// first to count the ones in flight.
func (d *Server) WebhooksSent() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent
}

// FlushWebhooks waits until no webhook POST is in flight, so a test can
// look at what arrived without sleeping.
func (d *Server) FlushWebhooks() {
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
