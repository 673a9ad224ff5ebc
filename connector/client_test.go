package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/connector/connectortest"
)

func TestClientReadsDTOsAndKeepsRaw(t *testing.T) {
	d := newDouble(t)
	cl := newClient(t, d.ClientConfig())
	ctx := context.Background()
	peer := connectortest.NewAddress()

	rel := d.AddIncomingRelationship(peer, "")
	// <, > and & are escaped by Go's encoder but not by the Connector's
	// (JSON.stringify), so a re-encoded Raw would differ.
	subject := `Invoice <42> & "Co" — Grüße`
	created := time.Date(2026, 3, 1, 10, 15, 0, 120e6, time.UTC)
	msg := d.AddIncomingMessage(peer, subject, created)
	req := d.AddIncomingRequest(peer)

	// Nothing is visible before a sync: the Connector has not fetched it.
	if ms, err := cl.Messages(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("Messages before sync: %d, %v", len(ms), err)
	}
	if _, err := cl.Message(ctx, msg.ID); !IsNotFound(err) {
		t.Fatalf("Message before sync: %v, want 404", err)
	}
	if err := cl.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	ms, err := cl.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 { // the mail and the message carrying the request
		t.Fatalf("%d messages, want 2", len(ms))
	}
	m := ms[0]
	if m.ID != msg.ID || m.IsOwn || m.CreatedBy != peer || m.CreatedAt != "2026-03-01T10:15:00.120Z" {
		t.Errorf("message fields: %+v", m)
	}
	if len(m.Recipients) != 1 || m.Recipients[0].Address != d.Address() || m.Recipients[0].RelationshipID != rel.ID || m.Recipients[0].ReceivedAt == "" {
		t.Errorf("recipients: %+v", m.Recipients)
	}
	if !bytes.Equal(m.Raw, msg.Raw) {
		t.Errorf("Raw changed:\n got %s\nwant %s", m.Raw, msg.Raw)
	}
	if !bytes.Contains(m.Raw, []byte("<42> & ")) {
		t.Errorf("Raw was re-encoded: %s", m.Raw)
	}
	reencoded, _ := json.Marshal(json.RawMessage(m.Raw))
	if bytes.Equal(reencoded, m.Raw) {
		t.Error("test is blind: a Go re-encoding equals the original bytes")
	}

	one, err := cl.Message(ctx, msg.ID)
	if err != nil || !bytes.Equal(one.Raw, msg.Raw) {
		t.Errorf("Message(%s): %v, raw %s", msg.ID, err, one.Raw)
	}

	rs, err := cl.Relationships(ctx)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Relationships: %d, %v", len(rs), err)
	}
	r := rs[0]
	if r.ID != rel.ID || r.Status != StatusPending || r.Peer != peer || r.TemplateID == "" || r.AuditLen() != 1 {
		t.Errorf("relationship: %+v", r)
	}
	if a := r.AuditLog[0]; a.Reason != ReasonCreation || a.CreatedBy != peer || a.NewStatus != StatusPending || a.OldStatus != "" {
		t.Errorf("audit entry: %+v", a)
	}
	if !bytes.Equal(r.Raw, rel.Raw) {
		t.Errorf("relationship Raw changed:\n got %s\nwant %s", r.Raw, rel.Raw)
	}
	if one, err := cl.Relationship(ctx, rel.ID); err != nil || !bytes.Equal(one.Raw, rel.Raw) {
		t.Errorf("Relationship(%s): %v", rel.ID, err)
	}

	qs, err := cl.IncomingRequests(ctx)
	if err != nil || len(qs) != 1 {
		t.Fatalf("IncomingRequests: %d, %v", len(qs), err)
	}
	if q := qs[0]; q.ID != req.ID || q.IsOwn || q.Peer != peer || q.Status != "Open" || !bytes.Equal(q.Raw, req.Raw) {
		t.Errorf("request: %+v", q)
	}

	info, err := cl.IdentityInfo(ctx)
	if err != nil || info.Address != d.Address() || info.PublicKey == "" {
		t.Errorf("IdentityInfo: %+v, %v", info, err)
	}
}

func TestClientFilters(t *testing.T) {
	d := newDouble(t)
	cl := newClient(t, d.ClientConfig())
	ctx := context.Background()
	a, b := connectortest.NewAddress(), connectortest.NewAddress()
	d.AddIncomingRelationship(a, "")
	out := d.AddOutgoingRelationship(b, "")
	early := d.AddIncomingMessage(a, "early", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	late := d.AddIncomingMessage(b, "late", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	d.SyncNow()

	ids := func(ms []Message, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, m := range ms {
			s = append(s, m.ID)
		}
		return strings.Join(s, ",")
	}
	cases := []struct {
		filters []Filter
		want    string
	}{
		{[]Filter{Where("createdBy", a)}, early.ID},
		{[]Filter{Where("createdBy", "!"+a)}, late.ID},
		{[]Filter{Where("createdAt", ">=2026-03-01T00:00:00.000Z")}, late.ID},
		{[]Filter{Where("createdAt", "<2026-03-01T00:00:00.000Z")}, early.ID},
		{[]Filter{Where("participant", b)}, late.ID},
		{[]Filter{Where("content.subject", "^ear")}, early.ID},
		{[]Filter{Where("isOwn", "true")}, ""},
		{[]Filter{Where("isOwn", "!")}, early.ID + "," + late.ID},
		{[]Filter{Where("createdBy", a), Where("createdBy", b)}, early.ID + "," + late.ID},
		{[]Filter{Where("recipients.relationshipId", out.ID)}, late.ID},
	}
	for _, c := range cases {
		if got := ids(cl.Messages(ctx, c.filters...)); got != c.want {
			t.Errorf("Messages(%v) = %s, want %s", c.filters, got, c.want)
		}
	}

	rs, err := cl.Relationships(ctx, Where("peer", b), Where("status", StatusPending))
	if err != nil || len(rs) != 1 || rs[0].ID != out.ID {
		t.Errorf("Relationships(peer=b): %v, %v", rs, err)
	}

	_, err = cl.Messages(ctx, Where("subject", "x"))
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != CodeInvalidPropertyValue {
		t.Errorf("unknown filter: %v, want 400 %s", err, CodeInvalidPropertyValue)
	}
	if n := d.Calls(connectortest.RouteMessages); n != len(cases)+1 {
		t.Errorf("%d calls of %s, want %d (a 400 is not retried)", n, connectortest.RouteMessages, len(cases)+1)
	}
}

func TestClientUnauthorized(t *testing.T) {
	d := newDouble(t)
	c := d.ClientConfig()
	c.APIKey = "Wrong-Key_00000000000000000000000"
	cl := newClient(t, c)

	_, err := cl.IdentityInfo(context.Background())
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Status != http.StatusUnauthorized || e.Code != CodeUnauthorized || e.ID == "" || e.Docs == "" || e.Time == "" || e.Message == "" {
		t.Errorf("Error %+v", e)
	}
	if !IsAuth(err) || IsUnavailable(err) || !HasCode(err, CodeUnauthorized) {
		t.Errorf("IsAuth %v, IsUnavailable %v", IsAuth(err), IsUnavailable(err))
	}
	for _, w := range []string{"401", CodeUnauthorized, "Unauthorized.", "/Account/IdentityInfo", "check CONNECTOR_API_KEY"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), c.APIKey) || strings.Contains(err.Error(), testKey) {
		t.Errorf("error %q contains a key", err)
	}
	if n := d.Calls(connectortest.RouteIdentityInfo); n != 1 {
		t.Errorf("%d attempts, want 1: a 4xx is never retried", n)
	}

	// The key is fixed: the same client works after the rotation.
	d.SetAPIKey(c.APIKey)
	if _, err := cl.IdentityInfo(context.Background()); err != nil {
		t.Errorf("after SetAPIKey: %v", err)
	}
}

func TestClientNotFoundAndBadIDs(t *testing.T) {
	d := newDouble(t)
	cl := newClient(t, d.ClientConfig())
	ctx := context.Background()

	_, err := cl.Relationship(ctx, "RELaaaaaaaaaaaaaaaaa")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Code != CodeRecordNotFound || !IsNotFound(err) {
		t.Errorf("unknown relationship: %v", err)
	}
	if IsUnavailable(err) || IsAuth(err) {
		t.Errorf("404 classified as unavailable or auth: %v", err)
	}
	if n := d.Calls(connectortest.RouteRelationship); n != 1 {
		t.Errorf("%d attempts for a 404, want 1", n)
	}

	for _, id := range []string{"", "../Account/Sync", "REL a", "REL%2F", strings.Repeat("x", 65)} {
		if _, err := cl.Message(ctx, id); err == nil || !strings.Contains(err.Error(), "invalid message id") {
			t.Errorf("Message(%q): %v", id, err)
		}
		if _, err := cl.AcceptRelationship(ctx, id); err == nil {
			t.Errorf("AcceptRelationship(%q) accepted the id", id)
		}
	}
	if n := d.Calls(connectortest.RouteMessage) + d.Calls(connectortest.RouteAcceptRelationship) + d.Calls(connectortest.RouteSync); n != 0 {
		t.Errorf("%d requests sent for invalid ids", n)
	}

	// A well-formed id the Connector rejects by format: its 400, not retried.
	_, err = cl.Message(ctx, "MSGshort")
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != CodeInvalidPropertyValue {
		t.Errorf("MSGshort: %v", err)
	}
}

func TestClientRetriesWhileUnavailable(t *testing.T) {
	d := newDouble(t)
	d.AddIncomingMessage(connectortest.NewAddress(), "hello", time.Time{})
	d.SyncNow()
	d.SetDown(true)
	// Up again after the first attempt, which got a 503.
	rt := newCounting(func(n int) {
		if n == 1 {
			d.SetDown(false)
		}
	})
	cl := newClient(t, d.ClientConfig(), WithTransport(rt))

	ms, err := cl.Messages(context.Background())
	if err != nil || len(ms) != 1 {
		t.Fatalf("Messages: %d, %v", len(ms), err)
	}
	if n := rt.n.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if n := d.Calls(connectortest.RouteMessages); n != 2 {
		t.Errorf("the double saw %d calls, want 2", n)
	}
}

// A throttled Connector (429, or 408/425 from a gateway) is unavailable
// for now, not a refusal: the caller retries by its schedule (the client
// itself does not hammer it).
func TestClientThrottled(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusTooEarly} {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"id":"x","code":"error.platform.tooManyRequests","message":"slow down","docs":"","time":"2026-01-01T00:00:00Z"}}`)
		}))
		c := validConfig()
		c.URL = srv.URL
		_, err := newClient(t, c).Messages(context.Background())
		srv.Close()
		if !IsUnavailable(err) || IsAuth(err) {
			t.Errorf("%d: %v, IsUnavailable %v", status, err, IsUnavailable(err))
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("%d: %d attempts, want 1", status, n)
		}
	}
	if IsUnavailable(&Error{Status: http.StatusBadRequest}) || IsUnavailable(&Error{Status: http.StatusNotFound}) {
		t.Error("a 400 or 404 is a refusal, not unavailability")
	}
}

func TestClientGivesUpAfterAttempts(t *testing.T) {
	d := newDouble(t)
	d.SetDown(true)
	rt := newCounting(nil)
	cl := newClient(t, d.ClientConfig(), WithTransport(rt))

	err := cl.Sync(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.Code != CodeUnavailable {
		t.Fatalf("Sync while down: %v", err)
	}
	if !IsUnavailable(err) || IsAuth(err) {
		t.Errorf("IsUnavailable %v, IsAuth %v", IsUnavailable(err), IsAuth(err))
	}
	if n := rt.n.Load(); n != 3 {
		t.Errorf("%d attempts, want CONNECTOR_ATTEMPTS=3", n)
	}
	if !strings.Contains(err.Error(), "attempt 3 of 3") {
		t.Errorf("error %q does not count attempts", err)
	}
}

func TestClientLostAcceptReply(t *testing.T) {
	d := newDouble(t)
	hs := newHooks(t)
	d.SetWebhook(hs.srv.URL+"/{{trigger}}", nil)
	rel := d.AddIncomingRelationship(connectortest.NewAddress(), "")
	d.SyncNow()
	d.FlushWebhooks()
	rt := newCounting(nil)
	cl := newClient(t, d.ClientConfig(), WithTransport(rt))
	ctx := context.Background()

	d.DropNextAcceptReply()
	_, err := cl.AcceptRelationship(ctx, rel.ID)
	if !IsUnavailable(err) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("lost reply: %v, want IsUnavailable", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("lost reply gave an *Error %+v", e)
	}
	// Not idempotent: a second PUT would meet an Active relationship.
	if n := d.AcceptCalls(rel.ID); n != 1 {
		t.Errorf("%d accept calls, want 1 (no retry after a lost reply)", n)
	}
	// The Connector did accept, and said so on its event bus.
	got, err := cl.Relationship(ctx, rel.ID)
	if err != nil || got.Status != StatusActive || got.AuditLen() != 2 {
		t.Fatalf("after the lost reply: %+v, %v", got, err)
	}
	d.FlushWebhooks()
	if n := hs.count(connectortest.EventRelationshipChanged); n != 2 {
		t.Errorf("%d relationshipChanged webhooks, want 2 (sync, accept)", n)
	}

	// Accepting again is a 400, not retried.
	_, err = cl.AcceptRelationship(ctx, rel.ID)
	if !HasCode(err, CodeWrongRelationshipStatus) || IsUnavailable(err) {
		t.Errorf("second accept: %v", err)
	}
	if n := d.AcceptCalls(rel.ID); n != 2 {
		t.Errorf("%d accept calls, want 2", n)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := validConfig()
	c.URL = "http://" + addr
	rt := newCounting(nil)
	cl := newClient(t, c, WithTransport(rt))

	_, err = cl.Relationships(context.Background())
	if !IsUnavailable(err) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("refused: %v", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("error %q contains the key", err)
	}
	// Even the non-idempotent accept is retried when no connection opened:
	// the request cannot have reached the Connector.
	_, err = cl.AcceptRelationship(context.Background(), "RELaaaaaaaaaaaaaaaaa")
	if !IsUnavailable(err) {
		t.Fatalf("accept refused: %v", err)
	}
	if n := rt.n.Load(); n != 6 {
		t.Errorf("%d attempts, want 3 + 3", n)
	}
}

func TestClientAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := validConfig()
	// Long enough that a starved client still gets each request to the
	// server (the handler counts it) before its attempt times out.
	c.URL, c.Timeout, c.Attempts = srv.URL, 500*time.Millisecond, 2
	cl := newClient(t, c)

	_, err := cl.Messages(context.Background())
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "CONNECTOR_TIMEOUT") {
		t.Fatalf("timeout: %v", err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}

	// The caller giving up is not the Connector being unavailable.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = cl.Messages(ctx)
	if !errors.Is(err, context.Canceled) || IsUnavailable(err) {
		t.Errorf("canceled: %v", err)
	}
}

func TestClientNonEnvelopeError(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("X-API-KEY") != testKey {
			t.Errorf("key header %q", r.Header.Get("X-API-KEY"))
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		// A proxy echoing the request headers, key included.
		w.Write([]byte("<html><body>Bad Gateway\nX-API-KEY: " + testKey + "\n" + strings.Repeat("x", 1000) + "</body></html>"))
	}))
	t.Cleanup(srv.Close)
	c := validConfig()
	c.URL = srv.URL
	cl := newClient(t, c)

	_, err := cl.Relationships(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "" {
		t.Fatalf("502: %v", err)
	}
	if !strings.Contains(e.Message, "Bad Gateway") || len(e.Message) > MaxExcerpt+len("…") {
		t.Errorf("excerpt %q", e.Message)
	}
	if strings.Contains(err.Error(), testKey) || !strings.Contains(e.Message, "[redacted]") {
		t.Errorf("the key leaked: %q", err)
	}
	if strings.ContainsAny(e.Message, "\n\r") {
		t.Errorf("excerpt spans lines: %q", e.Message)
	}
	if !IsUnavailable(err) || hits.Load() != 3 {
		t.Errorf("IsUnavailable %v after %d attempts, want true after 3", IsUnavailable(err), hits.Load())
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(true)
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/x?token=secret", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	c := validConfig()
	c.URL = srv.URL
	cl := newClient(t, c)

	_, err := cl.Messages(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect || strings.Contains(e.Message, "secret") {
		t.Fatalf("redirect: %v", err)
	}
	if leaked.Load() {
		t.Error("the redirect was followed, with the API key")
	}
}

func TestClientBasePathAndHeader(t *testing.T) {
	d := newDouble(t)
	d.SetBasePath("/api/v2")
	d.SetAPIKeyHeader("X-Connector-Key")
	c := d.ClientConfig()
	if c.BasePath != "/api/v2" || c.APIKeyHeader != "X-Connector-Key" {
		t.Fatalf("ClientConfig: %+v", c)
	}
	if _, err := newClient(t, c).IdentityInfo(context.Background()); err != nil {
		t.Fatalf("v6 base path: %v", err)
	}

	c.BasePath = DefaultBasePath
	_, err := newClient(t, c).IdentityInfo(context.Background())
	if !HasCode(err, CodeRouteDoesNotExist) || !strings.Contains(err.Error(), "check CONNECTOR_BASE_PATH") {
		t.Errorf("wrong base path: %v", err)
	}
	c = d.ClientConfig()
	c.APIKeyHeader = DefaultAPIKeyHeader
	if _, err := newClient(t, c).IdentityInfo(context.Background()); !IsAuth(err) {
		t.Errorf("wrong header: %v", err)
	}
}

func TestRelationshipBeforeV5(t *testing.T) {
	// Connector 3/4: changes instead of auditLog, template instead of templateId.
	raw := `{"id":"RELm4N5o6P7q8R9s0T1u","template":{"id":"RLTb7C8d9E0f1G2h3I4j","isOwn":true},` +
		`"status":"Active","peer":"id1QF24Gk2DfqCywRS7NpeH5iu7D4xvu6qv1",` +
		`"changes":[{"id":"RCHa","type":"Creation","status":"Accepted"},{"id":"RCHb","type":"Termination","status":"Pending"}]}`
	var r Relationship
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	if r.TemplateID != "RLTb7C8d9E0f1G2h3I4j" || r.AuditLen() != 2 || r.Status != StatusActive || string(r.Raw) != raw {
		t.Errorf("%+v", r)
	}
	var cur Relationship
	json.Unmarshal([]byte(`{"id":"RELx","templateId":"RLTy","auditLog":[{"reason":"Creation"}]}`), &cur)
	if cur.TemplateID != "RLTy" || cur.AuditLen() != 1 {
		t.Errorf("%+v", cur)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Status: 400, Code: CodeWrongRelationshipStatus, Message: "wrong status"}
	wrapped := errors.Join(errors.New("context"), e)
	if got := e.Error(); !strings.Contains(got, "400") || !strings.Contains(got, CodeWrongRelationshipStatus) || !strings.Contains(got, "wrong status") {
		t.Errorf("Error() = %q", got)
	}
	var as *Error
	if !errors.As(wrapped, &as) || as != e {
		t.Error("errors.As does not find the *Error")
	}
	if IsUnavailable(e) || IsAuth(e) || IsNotFound(e) {
		t.Error("a 400 is classified")
	}
}
