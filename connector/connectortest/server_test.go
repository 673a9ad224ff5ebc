package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/connector"
)

const base = connector.DefaultBasePath

func TestDoubleIdentity(t *testing.T) {
	d := newDouble(t)
	if !regexp.MustCompile(`^did:e:localhost:dids:[0-9a-f]{22}$`).MatchString(d.Address()) {
		t.Errorf("address %q", d.Address())
	}
	if !strings.HasPrefix(d.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q", d.URL())
	}
	if _, err := NewServer("", nil); err == nil {
		t.Error("NewServer accepted an empty key")
	}
	ids := regexp.MustCompile(`^(MSG|REL|REQ|RLT)[A-Za-z0-9]{17}$`)
	m := d.AddIncomingMessage(NewAddress(), "s", time.Time{})
	r := d.AddIncomingRelationship(NewAddress(), "")
	q := d.AddIncomingRequest(NewAddress())
	for _, id := range []string{m.ID, r.ID, r.TemplateID, q.ID} {
		if !ids.MatchString(id) {
			t.Errorf("id %q", id)
		}
	}
}

func TestDoubleAuthAndRouting(t *testing.T) {
	d := newDouble(t)
	paths := map[string]string{
		RouteSync:               "/Account/Sync",
		RouteIdentityInfo:       "/Account/IdentityInfo",
		RouteMessages:           "/Messages",
		RouteMessage:            "/Messages/MSGaaaaaaaaaaaaaaaaa",
		RouteRelationships:      "/Relationships",
		RouteRelationship:       "/Relationships/RELaaaaaaaaaaaaaaaaa",
		RouteAcceptRelationship: "/Relationships/RELaaaaaaaaaaaaaaaaa/Accept",
		RouteIncomingRequests:   "/Requests/Incoming",
	}
	for route, path := range paths {
		method, _, _ := strings.Cut(route, " ")
		for _, key := range []string{"", "wrong-key-wrong-key-wrong-key-00"} {
			status, body, _ := call(t, d, method, base+path, key)
			if status != http.StatusUnauthorized {
				t.Errorf("%s with key %q: %d, want 401", route, key, status)
			}
			wantEnvelope(t, body, connector.CodeUnauthorized)
		}
		if n := d.Calls(route); n != 2 {
			t.Errorf("Calls(%s) = %d, want 2", route, n)
		}
	}

	// Authentication comes before routing, as in the Connector.
	if status, body, _ := call(t, d, "GET", base+"/Nope", ""); status != http.StatusUnauthorized {
		t.Errorf("unknown route without key: %d %s", status, body)
	}
	status, body, _ := call(t, d, "GET", base+"/Nope", testKey)
	if status != http.StatusNotFound {
		t.Errorf("unknown route: %d", status)
	}
	wantEnvelope(t, body, connector.CodeRouteDoesNotExist)
	status, body, hdr := call(t, d, "GET", base+"/Account/Sync", testKey)
	if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "POST" {
		t.Errorf("GET /Account/Sync: %d, Allow %q", status, hdr.Get("Allow"))
	}
	wantEnvelope(t, body, connector.CodeMethodNotAllowed)
	if status, _, _ := call(t, d, "POST", base+"/Relationships/RELaaaaaaaaaaaaaaaaa/Accept", testKey); status != http.StatusMethodNotAllowed {
		t.Errorf("POST .../Accept: %d, want 405", status)
	}
	if status, _, _ := call(t, d, "GET", "/api/v2/Messages", testKey); status != http.StatusNotFound {
		t.Errorf("other base path: %d, want 404", status)
	}
}

func TestDoubleSyncVisibility(t *testing.T) {
	d := newDouble(t)
	rc := newReceiver(t)
	d.SetWebhook(rc.srv.URL+"/{{trigger}}", nil)
	msg := d.AddIncomingMessage(NewAddress(), "hi", time.Time{})

	status, body, _ := call(t, d, "GET", base+"/Messages", testKey)
	if status != http.StatusOK || string(body) != `{"result":[]}` {
		t.Errorf("before sync: %d %s", status, body)
	}
	status, body, _ = call(t, d, "GET", base+"/Messages/"+msg.ID, testKey)
	if status != http.StatusNotFound {
		t.Errorf("GET one before sync: %d", status)
	}
	wantEnvelope(t, body, connector.CodeRecordNotFound)
	d.FlushWebhooks()
	if n := d.WebhooksSent(); n != 0 {
		t.Errorf("%d webhooks before sync", n)
	}

	status, body, hdr := call(t, d, "POST", base+"/Account/Sync", testKey)
	if status != http.StatusNoContent || len(body) != 0 {
		t.Errorf("sync: %d %q", status, body)
	}
	if hdr.Get("X-Response-Time") == "" {
		t.Error("no X-Response-Time header")
	}
	status, body, hdr = call(t, d, "GET", base+"/Messages", testKey)
	if want := `{"result":[` + string(msg.Raw) + `]}`; status != http.StatusOK || string(body) != want {
		t.Errorf("after sync: %d\n got %s\nwant %s", status, body, want)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	status, body, _ = call(t, d, "GET", base+"/Messages/"+msg.ID, testKey)
	if status != http.StatusOK || string(body) != `{"result":`+string(msg.Raw)+`}` {
		t.Errorf("GET one: %d %s", status, body)
	}
	d.FlushWebhooks()
	if n := d.WebhooksSent(); n != 1 {
		t.Errorf("%d webhooks after sync, want 1", n)
	}

	// A second sync has nothing new to tell.
	d.SyncNow()
	d.FlushWebhooks()
	if n := d.WebhooksSent(); n != 1 {
		t.Errorf("%d webhooks after an empty sync, want still 1", n)
	}
}

func TestDoubleAccept(t *testing.T) {
	d := newDouble(t)
	rc := newReceiver(t)
	d.SetWebhook(rc.srv.URL+"/{{trigger}}", nil)
	cl := newClient(t, d.ClientConfig())
	ctx := context.Background()
	peer := NewAddress()
	incoming := d.AddIncomingRelationship(peer, "")
	own := d.AddOutgoingRelationship(NewAddress(), "")
	d.SyncNow()
	unsynced := d.AddIncomingRelationship(NewAddress(), "") // on the Backbone only
	d.FlushWebhooks()
	before := d.WebhooksSent()

	// A pending relationship the peer created: accepted.
	got, err := cl.AcceptRelationship(ctx, incoming.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != connector.StatusActive || got.AuditLen() != 2 {
		t.Fatalf("accepted: %+v", got)
	}
	a := got.AuditLog[1]
	if a.Reason != connector.ReasonAcceptanceOfCreation || a.OldStatus != connector.StatusPending || a.NewStatus != connector.StatusActive || a.CreatedBy != d.Address() {
		t.Errorf("audit entry %+v", a)
	}
	if !bytes.HasPrefix(got.Raw, incoming.Raw[:bytes.Index(incoming.Raw, []byte(`"status"`))]) {
		t.Errorf("accepted DTO lost its fields: %s", got.Raw)
	}
	d.FlushWebhooks()
	if n := d.WebhooksSent() - before; n != 1 {
		t.Fatalf("%d webhooks for the acceptance, want 1", n)
	}
	changed := rc.byTrigger()["/"+EventRelationshipChanged]
	if want := `{"data":` + string(got.Raw) + `,"trigger":"transport.relationshipChanged"}`; string(changed[len(changed)-1]) != want {
		t.Errorf("webhook body\n got %s\nwant %s", changed[len(changed)-1], want)
	}
	// The raw status code and envelope of the spec: 200 {"result": …}.
	status, body, _ := call(t, d, "GET", base+"/Relationships/"+incoming.ID, testKey)
	if status != http.StatusOK || string(body) != `{"result":`+string(got.Raw)+`}` {
		t.Errorf("GET after accept: %d %s", status, body)
	}

	cases := []struct {
		name   string
		id     string
		status int
		code   string
	}{
		{"active", incoming.ID, http.StatusBadRequest, connector.CodeWrongRelationshipStatus},
		{"own pending", own.ID, http.StatusBadRequest, connector.CodeOperationOnlyAllowedForPeer},
		{"unknown", "RELzzzzzzzzzzzzzzzzz", http.StatusNotFound, connector.CodeRecordNotFound},
		{"not synced yet", unsynced.ID, http.StatusNotFound, connector.CodeRecordNotFound},
		{"malformed", "MSGaaaaaaaaaaaaaaaaa", http.StatusBadRequest, connector.CodeInvalidPropertyValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := cl.AcceptRelationship(ctx, c.id)
			var e *connector.Error
			if !errors.As(err, &e) || e.Status != c.status || e.Code != c.code {
				t.Fatalf("accept: %v, want %d %s", err, c.status, c.code)
			}
			status, body, _ := call(t, d, "PUT", base+"/Relationships/"+c.id+"/Accept", testKey)
			if status != c.status {
				t.Errorf("raw PUT: %d, want %d", status, c.status)
			}
			wantEnvelope(t, body, c.code)
			want := 2 // client once (a 4xx is not retried), raw once
			if c.id == incoming.ID {
				want++ // and the acceptance above
			}
			if n := d.AcceptCalls(c.id); n != want {
				t.Errorf("AcceptCalls = %d, want %d", n, want)
			}
		})
	}
	if r, err := cl.Relationship(ctx, own.ID); err != nil || r.Status != connector.StatusPending {
		t.Errorf("own relationship changed: %+v %v", r, err)
	}
	d.FlushWebhooks()
	if n := d.WebhooksSent() - before; n != 1 {
		t.Errorf("%d webhooks, want only the one of the acceptance", n)
	}
}

func TestDoublePeerAccepts(t *testing.T) {
	d := newDouble(t)
	cl := newClient(t, d.ClientConfig())
	ctx := context.Background()
	own := d.AddOutgoingRelationship(NewAddress(), "")
	in := d.AddIncomingRelationship(NewAddress(), "")
	d.SyncNow()

	if err := d.PeerAcceptRelationship(in.ID); err == nil {
		t.Error("the peer accepted its own request")
	}
	if err := d.PeerAcceptRelationship(own.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.PeerAcceptRelationship(own.ID); err == nil {
		t.Error("accepted twice")
	}
	if r, _ := cl.Relationship(ctx, own.ID); r.Status != connector.StatusPending {
		t.Errorf("before sync: %s", r.Status)
	}
	if err := cl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := cl.Relationship(ctx, own.ID)
	if err != nil || r.Status != connector.StatusActive || r.AuditLen() != 2 || r.AuditLog[1].CreatedBy != r.Peer {
		t.Errorf("after sync: %+v %v", r, err)
	}
}

func TestDoubleWebhooks(t *testing.T) {
	d := newDouble(t)
	rc := newReceiver(t)
	d.SetWebhook(rc.srv.URL+"/hooks/{{trigger}}?t={{trigger}}", map[string]string{"X-Hook-Key": "hook-secret"})
	peer := NewAddress()
	rel := d.AddIncomingRelationship(peer, "")
	msg := d.AddIncomingMessage(peer, "<b>hi</b>", time.Time{})
	req := d.AddIncomingRequest(peer)

	status, _, _ := call(t, d, "POST", base+"/Account/Sync", testKey, "x-correlation-id", "corr-1")
	if status != http.StatusNoContent {
		t.Fatalf("sync: %d", status)
	}
	d.Emit("runtime.modulesStarted", nil)
	d.Emit("consumption.attributeCreated", json.RawMessage(`{"@type":"PeerIdentityAttribute", "id":"ATTc3D4e5F6g7H8i9J0k"}`))
	d.FlushWebhooks()

	got := rc.all()
	if len(got) != 6 || d.WebhooksSent() != 6 {
		t.Fatalf("%d webhooks received, %d sent, want 6", len(got), d.WebhooksSent())
	}
	for _, r := range got {
		trigger := strings.TrimPrefix(r.path, "/hooks/")
		if r.method != http.MethodPost || r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Hook-Key") != "hook-secret" {
			t.Errorf("%s: method %s, headers %v", trigger, r.method, r.header)
		}
		if r.header.Get("X-Api-Key") != "" {
			t.Errorf("%s: the Connector's API key went to the webhook", trigger)
		}
		var body struct {
			Trigger string `json:"trigger"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.Trigger != trigger {
			t.Errorf("body trigger %q, path trigger %q (%v)", body.Trigger, trigger, err)
		}
		sync := !strings.HasPrefix(trigger, "runtime.") && !strings.HasPrefix(trigger, "consumption.attribute")
		if c := r.header.Get("x-correlation-id"); sync != (c == "corr-1") {
			t.Errorf("%s: x-correlation-id %q", trigger, c)
		}
	}

	by := rc.byTrigger()
	body := func(ns string, data []byte) string {
		return `{"data":` + string(data) + `,"trigger":"` + ns + `"}`
	}
	wantBodies := map[string][]string{
		"/hooks/" + EventRelationshipChanged:     {body(EventRelationshipChanged, rel.Raw)},
		"/hooks/" + EventIncomingRequestReceived: {body(EventIncomingRequestReceived, req.Raw)},
		"/hooks/runtime.modulesStarted":          {`{"trigger":"runtime.modulesStarted"}`},
		"/hooks/consumption.attributeCreated": {
			`{"data":{"@type":"PeerIdentityAttribute", "id":"ATTc3D4e5F6g7H8i9J0k"},"trigger":"consumption.attributeCreated"}`},
	}
	for path, want := range wantBodies {
		if len(by[path]) != 1 || string(by[path][0]) != want[0] {
			t.Errorf("%s:\n got %q\nwant %q", path, by[path], want[0])
		}
	}
	// Two messages: the mail and the one carrying the request.
	received := by["/hooks/"+EventMessageReceived]
	if len(received) != 2 {
		t.Fatalf("%d messageReceived, want 2", len(received))
	}
	if !bytes.Equal(received[0], []byte(body(EventMessageReceived, msg.Raw))) && !bytes.Equal(received[1], []byte(body(EventMessageReceived, msg.Raw))) {
		t.Errorf("no messageReceived carries the mail byte for byte: %s", received)
	}
	if !bytes.Contains(msg.Raw, []byte("<b>hi</b>")) {
		t.Errorf("HTML-escaped DTO: %s", msg.Raw)
	}
}

func TestDoubleWebhookNoRetryNoRedirect(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusTemporaryRedirect} {
		d := newDouble(t)
		rc := newReceiver(t)
		rc.status.Store(int32(status))
		d.SetWebhook(rc.srv.URL+"/{{trigger}}", nil)
		d.Emit("transport.messageSent", map[string]string{"id": "MSGaaaaaaaaaaaaaaaaa"})
		d.FlushWebhooks()
		if n := len(rc.all()); n != 1 || d.WebhooksSent() != 1 {
			t.Errorf("receiver answering %d got %d requests (sent %d), want 1", status, n, d.WebhooksSent())
		}
	}

	// An unreachable receiver: the post fails, is logged, and counted.
	d := newDouble(t)
	rc := newReceiver(t)
	rc.srv.Close()
	d.SetWebhook(rc.srv.URL+"/{{trigger}}", nil)
	d.Emit("runtime.modulesStarted", nil)
	d.FlushWebhooks()
	if n := d.WebhooksSent(); n != 1 {
		t.Errorf("%d posts to an unreachable receiver, want 1", n)
	}
}

func TestDoubleDown(t *testing.T) {
	d := newDouble(t)
	rc := newReceiver(t)
	d.SetWebhook(rc.srv.URL+"/{{trigger}}", nil)
	d.SetDown(true)
	msg := d.AddIncomingMessage(NewAddress(), "while down", time.Time{})

	for _, route := range []string{"POST /Account/Sync", "GET /Messages", "GET /Account/IdentityInfo", "GET /Nope"} {
		method, path, _ := strings.Cut(route, " ")
		for _, key := range []string{testKey, ""} {
			status, body, _ := call(t, d, method, base+path, key)
			if status != http.StatusServiceUnavailable {
				t.Errorf("%s while down: %d", route, status)
			}
			wantEnvelope(t, body, connector.CodeUnavailable)
		}
	}
	d.SyncNow()
	d.Emit("runtime.modulesStarted", nil)
	d.FlushWebhooks()
	if n := d.WebhooksSent(); n != 0 || len(rc.all()) != 0 {
		t.Fatalf("%d webhooks sent while down", n)
	}

	// Back up: the message waited on the Backbone for the next sync.
	d.SetDown(false)
	d.SyncNow()
	d.FlushWebhooks()
	by := rc.byTrigger()
	if len(rc.all()) != 1 || len(by["/"+EventMessageReceived]) != 1 {
		t.Errorf("after coming back: %v", by)
	}
	status, body, _ := call(t, d, "GET", base+"/Messages/"+msg.ID, testKey)
	if status != http.StatusOK {
		t.Errorf("message after coming back: %d %s", status, body)
	}
}

func TestDoubleSimulate(t *testing.T) {
	d := newDouble(t)
	rc := newReceiver(t)
	d.SetWebhook(rc.srv.URL+"/{{trigger}}", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Simulate(ctx, time.Millisecond)
		close(done)
	}()
	for range 20 {
		<-rc.got
	}
	cancel()
	<-done
	d.FlushWebhooks()

	by := rc.byTrigger()
	if len(by["/"+EventRelationshipChanged]) == 0 {
		t.Errorf("no relationship events: %v", keys(by))
	}
	for path := range by {
		switch strings.TrimPrefix(path, "/") {
		case EventMessageReceived, EventRelationshipChanged, EventIncomingRequestReceived:
		default:
			t.Errorf("unexpected trigger %s", path)
		}
	}
	cl := newClient(t, d.ClientConfig())
	rs, err := cl.Relationships(context.Background())
	if err != nil || len(rs) == 0 {
		t.Errorf("relationships after simulating: %d, %v", len(rs), err)
	}
}

func keys(m map[string][][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// AddIncomingMessages adds n messages at once, visible at the next sync,
// each with its own id.
func TestDoubleAddIncomingMessages(t *testing.T) {
	d := newDouble(t)
	cl := newClient(t, d.ClientConfig())
	d.AddIncomingMessages(NewAddress(), "bulk", 3)
	if ms, err := cl.Messages(context.Background()); err != nil || len(ms) != 0 {
		t.Fatalf("before the sync: %d messages, %v", len(ms), err)
	}
	d.SyncNow()
	ms, err := cl.Messages(context.Background())
	if err != nil || len(ms) != 3 {
		t.Fatalf("after the sync: %d messages, %v", len(ms), err)
	}
	if ms[0].ID == ms[1].ID || ms[1].ID == ms[2].ID || ms[0].IsOwn || len(ms[2].Recipients) != 1 {
		t.Errorf("messages %+v", ms)
	}
}
