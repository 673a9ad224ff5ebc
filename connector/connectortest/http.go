package connectortest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/router"
)

// route is one REST route of the double.
type route struct {
	method string
	path   []string // "{id}" matches any one segment
	handle func(d *Server, r *http.Request, id string) reply
}

// name is the route as Calls names it, e.g. "GET /Messages/{id}".
func (rt route) name() string { return rt.method + " /" + strings.Join(rt.path, "/") }

// routes are the Connector 7.x routes the mesh uses (openapi.yml, paths
// /api/core/v1/...), with the status codes the spec gives for success.
var routes = []route{
	{http.MethodPost, []string{"Account", "Sync"}, (*Server).serveSync},
	{http.MethodGet, []string{"Account", "IdentityInfo"}, (*Server).serveIdentityInfo},
	{http.MethodGet, []string{"Messages"}, (*Server).serveMessages},
	{http.MethodGet, []string{"Messages", "{id}"}, (*Server).serveMessage},
	{http.MethodGet, []string{"Relationships"}, (*Server).serveRelationships},
	{http.MethodGet, []string{"Relationships", "{id}"}, (*Server).serveRelationship},
	{http.MethodPut, []string{"Relationships", "{id}", "Accept"}, (*Server).serveAccept},
	{http.MethodGet, []string{"Requests", "Incoming"}, (*Server).serveIncomingRequests},
}

// reply is a handler's answer, written by ServeHTTP.
type reply struct {
	status int
	body   []byte // nil: no body
	drop   bool   // close the connection instead of answering
}

// ServeHTTP answers like the Connector's HTTP server: 503 while down, 401
// without the right API key (on every route, known or not, as the
// Connector authenticates before routing), 404 or 405 for unknown routes
// or methods, then the route. Paths match case-insensitively, as Express
// routes do.
func (d *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	d.mu.Lock()
	base, down, key, hdr := d.basePath, d.down, d.apiKey, d.keyHdr
	rt, id, allowed := match(base, r)
	if rt != nil {
		d.calls[rt.name()]++
		if rt.name() == RouteAcceptRelationship {
			d.accepts[id]++
		}
	}
	d.mu.Unlock()

	var rep reply
	switch {
	case down:
		rep = errorReply(http.StatusServiceUnavailable, connector.CodeUnavailable, "The Connector is not available.")
	case key == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get(hdr)), []byte(key)) != 1:
		rep = errorReply(http.StatusUnauthorized, connector.CodeUnauthorized, "Unauthorized.")
	case rt == nil && allowed != "":
		w.Header().Set("Allow", allowed)
		rep = errorReply(http.StatusMethodNotAllowed, connector.CodeMethodNotAllowed, "The request method is not supported for the requested resource.")
	case rt == nil:
		rep = errorReply(http.StatusNotFound, connector.CodeRouteDoesNotExist, "The requested route does not exist.")
	default:
		rep = rt.handle(d, r, id)
	}
	d.log.Debug("connector double request", "method", r.Method, "path", r.URL.Path, "status", rep.status, "dropped", rep.drop)
	if rep.drop {
		dropConnection(w)
		return
	}
	h := w.Header()
	h.Set("X-Response-Time", time.Now().UTC().Format(isoMillis))
	h.Set("X-Response-Duration-ms", strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', -1, 64))
	if rep.body != nil {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

// match finds the route of r under base. It returns the route and its id
// segment, or nil and the methods the path allows ("" for an unknown
// path). HEAD is answered like GET, as Express does.
func match(base string, r *http.Request) (*route, string, string) {
	p := r.URL.EscapedPath()
	if len(p) < len(base) || !strings.EqualFold(p[:len(base)], base) {
		return nil, "", ""
	}
	rest := strings.TrimSuffix(p[len(base):], "/")
	if !strings.HasPrefix(rest, "/") {
		return nil, "", ""
	}
	segs := strings.Split(rest[1:], "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, "", ""
		}
		segs[i] = u
	}
	var allowed []string
	for i := range routes {
		rt := &routes[i]
		id, ok := matchPath(rt.path, segs)
		if !ok {
			continue
		}
		if r.Method == rt.method || (r.Method == http.MethodHead && rt.method == http.MethodGet) {
			return rt, id, ""
		}
		allowed = append(allowed, rt.method)
	}
	return nil, "", strings.Join(allowed, ", ")
}

// matchPath matches path segments against a route's pattern.
func matchPath(pattern, segs []string) (id string, ok bool) {
	if len(pattern) != len(segs) {
		return "", false
	}
	for i, p := range pattern {
		switch {
		case p == "{id}" && segs[i] != "":
			id = segs[i]
		case !strings.EqualFold(p, segs[i]):
			return "", false
		}
	}
	return id, true
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	// Makes net/http close the connection without logging.
	panic(http.ErrAbortHandler)
}

// serveSync: POST /Account/Sync, 204 No Content. The events of the sync
// carry the request's x-correlation-id to the webhooks.
func (d *Server) serveSync(r *http.Request, _ string) reply {
	d.sync(r.Header.Get(router.HeaderCorrelationID))
	return reply{status: http.StatusNoContent}
}

// serveIdentityInfo: GET /Account/IdentityInfo, 200 {"result": IdentityInfo}.
func (d *Server) serveIdentityInfo(*http.Request, string) reply {
	return result(http.StatusOK, encodeJSON(connector.IdentityInfo{Address: d.address, PublicKey: d.publicKey}))
}

// Filters each list route takes (openapi.yml, the routes' query
// parameters), and virtual ones that stand for several fields.
var (
	messageFilters = []string{"isOwn", "createdBy", "createdByDevice", "createdAt", "recipients.address",
		"recipients.relationshipId", "participant", "attachments", "content.@type", "content.subject",
		"content.body", "content.bodyFormat"}
	relationshipFilters = []string{"templateId", "peer", "status"}
	requestFilters      = []string{"id", "peer", "createdAt", "status", "wasAutomaticallyDecided",
		"content.expiresAt", "content.items.@type", "content.items.items.@type", "source.type",
		"source.reference", "response.createdAt", "response.source.type", "response.source.reference",
		"response.content.result", "response.content.items.@type", "response.content.items.items.@type"}
	// participant is "either createdBy or one of the recipients".
	messageVirtual = map[string][]string{"participant": {"createdBy", "recipients.address"}}
)

// serveMessages: GET /Messages, 200 {"result": [MessageDTO…]}.
func (d *Server) serveMessages(r *http.Request, _ string) reply {
	d.mu.Lock()
	raws := visibleRaws(d.messages, nil)
	d.mu.Unlock()
	return list(r, messageFilters, messageVirtual, raws)
}

// serveMessage: GET /Messages/{id}, 200 {"result": MessageDTO}. The spec's
// MessageWithAttachments lists attachments as file metadata; the double's
// messages have none, so it is the MessageDTO.
func (d *Server) serveMessage(_ *http.Request, id string) reply {
	if rep, ok := checkDoubleID("id", "MSG", id); !ok {
		return rep
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.messages {
		if o.visible && o.dto.ID == id {
			return result(http.StatusOK, o.raw)
		}
	}
	return notFound("Message")
}

// serveRelationships: GET /Relationships, 200 {"result": [RelationshipDTO…]}.
func (d *Server) serveRelationships(r *http.Request, _ string) reply {
	d.mu.Lock()
	raws := visibleRaws(d.rels, nil)
	d.mu.Unlock()
	return list(r, relationshipFilters, nil, raws)
}

// serveRelationship: GET /Relationships/{id}, 200 {"result": RelationshipDTO}.
func (d *Server) serveRelationship(_ *http.Request, id string) reply {
	if rep, ok := checkDoubleID("id", "REL", id); !ok {
		return rep
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if o := d.relationship(id, true); o != nil {
		return result(http.StatusOK, o.raw)
	}
	return notFound("Relationship")
}

// serveIncomingRequests: GET /Requests/Incoming, 200 {"result": [LocalRequestDTO…]}.
func (d *Server) serveIncomingRequests(r *http.Request, _ string) reply {
	d.mu.Lock()
	raws := visibleRaws(d.reqs, func(q requestDTO) bool { return !q.IsOwn })
	d.mu.Unlock()
	return list(r, requestFilters, nil, raws)
}

// serveAccept: PUT /Relationships/{id}/Accept, no request body, 200
// {"result": RelationshipDTO}. As the transport library's accept: the
// relationship must be Pending (else connector.CodeWrongRelationshipStatus) and its
// last audit-log entry created by the peer (else
// connector.CodeOperationOnlyAllowedForPeer), both 400. Success appends an
// AcceptanceOfCreation entry and fires transport.relationshipChanged.
func (d *Server) serveAccept(r *http.Request, id string) reply {
	d.mu.Lock()
	drop := d.drop
	d.drop = false
	d.mu.Unlock()
	rep, ev := d.accept(id)
	if len(ev) > 0 {
		d.fire(ev, r.Header.Get(router.HeaderCorrelationID))
	}
	rep.drop = drop
	return rep
}

func (d *Server) accept(id string) (reply, []event) {
	if rep, ok := checkDoubleID("relationshipId", "REL", id); !ok {
		return rep, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.relationship(id, true)
	if o == nil {
		return notFound("Relationship"), nil
	}
	if o.dto.Status != connector.StatusPending {
		return errorReply(http.StatusBadRequest, connector.CodeWrongRelationshipStatus,
			fmt.Sprintf("The Relationship '%s' has the wrong status '%s' to run this operation.", id, o.dto.Status)), nil
	}
	if o.dto.AuditLog[len(o.dto.AuditLog)-1].CreatedBy != o.dto.Peer {
		return errorReply(http.StatusBadRequest, connector.CodeOperationOnlyAllowedForPeer,
			"Only your peer can accept the relationship "+id), nil
	}
	o.dto.Status = connector.StatusActive
	o.dto.AuditLog = append(o.dto.AuditLog, auditDTO{
		CreatedAt: time.Now().UTC().Format(isoMillis), CreatedBy: d.address, CreatedByDevice: d.device,
		Reason: connector.ReasonAcceptanceOfCreation, OldStatus: connector.StatusPending, NewStatus: connector.StatusActive,
	})
	o.encode()
	return result(http.StatusOK, o.raw), []event{{EventRelationshipChanged, o.raw}}
}

// relationship finds a relationship by id, only among synced ones if
// visibleOnly; d.mu held.
func (d *Server) relationship(id string, visibleOnly bool) *object[relationshipDTO] {
	if o := d.relByID[id]; o != nil && (o.visible || !visibleOnly) {
		return o
	}
	return nil
}

// visibleRaws returns the JSON of the synced objects that keep accepts
// (nil: all), in the order added; d.mu held.
func visibleRaws[T any](objs []*object[T], keep func(T) bool) []json.RawMessage {
	var raws []json.RawMessage
	for _, o := range objs {
		if o.visible && (keep == nil || keep(o.dto)) {
			raws = append(raws, o.raw)
		}
	}
	return raws
}

// list answers a list route: the objects that match the request's
// filters, 200 {"result": [...]}, or 400 for a filter the route does not
// take or cannot parse.
func list(r *http.Request, allowed []string, virtual map[string][]string, raws []json.RawMessage) reply {
	fs, err := parseFilters(r.URL.Query(), allowed, virtual)
	if err != nil {
		return errorReply(http.StatusBadRequest, connector.CodeInvalidPropertyValue, err.Error())
	}
	var b bytes.Buffer
	b.WriteString(`{"result":[`)
	n := 0
	for _, raw := range raws {
		ok, err := fs.match(raw)
		if err != nil {
			return errorReply(http.StatusBadRequest, connector.CodeInvalidPropertyValue, err.Error())
		}
		if !ok {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(raw)
		n++
	}
	b.WriteString("]}")
	return reply{status: http.StatusOK, body: b.Bytes()}
}

// checkDoubleID answers 400 for an id that is not prefix and 17 letters
// or digits, as the Runtime's request validation does.
func checkDoubleID(field, prefix, id string) (reply, bool) {
	ok := len(id) == 20 && strings.HasPrefix(id, prefix)
	for i := 3; ok && i < len(id); i++ {
		ok = strings.IndexByte(idChars, id[i]) >= 0
	}
	if !ok {
		return errorReply(http.StatusBadRequest, connector.CodeInvalidPropertyValue,
			fmt.Sprintf("%s must match the format of a %s id: %s and 17 letters or digits", field, prefix, prefix)), false
	}
	return reply{}, true
}

// notFound is the Runtime's recordNotFound answer for a type of object.
func notFound(kind string) reply {
	return errorReply(http.StatusNotFound, connector.CodeRecordNotFound,
		kind+" not found. Make sure the ID exists and the record is not expired.")
}

// result wraps raw in the success envelope {"result": …}.
func result(status int, raw []byte) reply {
	body := make([]byte, 0, len(raw)+11)
	body = append(body, `{"result":`...)
	body = append(body, raw...)
	body = append(body, '}')
	return reply{status: status, body: body}
}

// errorReply is the Connector's error envelope, fields in its order.
func errorReply(status int, code, message string) reply {
	type errorContent struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		ID      string `json:"id"`
		Time    string `json:"time"`
		Docs    string `json:"docs"`
	}
	body := encodeJSON(struct {
		Error errorContent `json:"error"`
	}{errorContent{
		Code: code, Message: message,
		ID:   "ERR" + randomString("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 17),
		Time: time.Now().UTC().Format(isoMillis),
		Docs: "https://enmeshed.eu/integrate/errorCodes#" + strings.ToLower(code),
	}})
	return reply{status: status, body: body}
}
