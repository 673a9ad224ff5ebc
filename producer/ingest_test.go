package producer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	testKey  = "k3y-for-tests"
	nextKey  = "n3xt-k3y-during-rotation"
	msgData  = `{"id":"MSGq8WnJ3kT0aZp4RcVx","isOwn":false,"content":{"@type":"Mail","subject":"Invoice","body":"See attachment"},"createdAt":"2026-03-01T10:15:00.120Z"}`
	msgEvent = `{"trigger":"transport.messageReceived","data":` + msgData + `}`
)

type env struct {
	url    string
	js     jetstream.JetStream
	nc     *nats.Conn
	stream jetstream.Stream
}

// setup starts a server, the stream and ingest. Publishes may take 5 s:
// a slow fsync on a loaded machine must not turn a first attempt into a
// timeout and its retry into a "duplicate".
func setup(t *testing.T, change ...func(*producer.IngestConfig)) *env {
	t.Helper()
	return setupWith(t, producer.PublisherConfig{Timeout: 5 * time.Second, Attempts: 2}, change...)
}

func setupWith(t *testing.T, pc producer.PublisherConfig, change ...func(*producer.IngestConfig)) *env {
	t.Helper()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.ClientURL())
	log := natstest.Logger(t)
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		t.Fatal(err)
	}
	s := router.MustSubjects("enmeshed")
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: 10 * time.Minute}
	st, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(s, sc), log)
	if err != nil {
		t.Fatal(err)
	}
	ic := producer.IngestConfig{Addr: "127.0.0.1:0", APIKey: testKey + " " + nextKey, APIKeyHeader: "X-API-KEY", MaxBody: 4096, ConnectorID: "enmeshed-connector"}
	for _, c := range change {
		c(&ic)
	}
	maxBody, err := ic.BodyLimit(nc.MaxPayload())
	if err != nil {
		t.Fatal(err)
	}
	pub := producer.NewPublisher(js, s, pc, log)
	mux := http.NewServeMux()
	producer.NewIngest(pub, ic, maxBody, producer.NewMetrics(prometheus.NewRegistry()), log).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &env{url: hs.URL, js: js, nc: nc, stream: st}
}

func post(t *testing.T, url, body string, headers ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-KEY", testKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) count(t *testing.T) uint64 {
	t.Helper()
	info, err := e.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestIngestPublishesEvent(t *testing.T) {
	e := setup(t)
	code, body := post(t, e.url+"/events", msgEvent, "X-Correlation-Id", "corr-42",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var reply struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		StreamSeq uint64 `json:"stream_seq"`
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.Status != "published" || reply.StreamSeq != 1 {
		t.Fatalf("reply %s (%v)", body, err)
	}
	m, err := e.stream.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "enmeshed.transport.messageReceived" || string(m.Data) != msgData {
		t.Errorf("message %s %s", m.Subject, m.Data)
	}
	wantID, _ := router.EventID("enmeshed-connector", "transport.messageReceived", []byte(msgData))
	for k, v := range map[string]string{"ce-id": wantID, "Nats-Msg-Id": wantID, "ce-type": "transport.messageReceived",
		"ce-source": "enmeshed-connector", "ce-specversion": "1.0", "ce-datacontenttype": "application/json",
		"eventmesh-origin": "webhook", "x-correlation-id": "corr-42", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		if got := m.Header[k]; len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %v, want %s", k, got, v)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, m.Header.Get("ce-time")); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("ce-time %q", m.Header.Get("ce-time"))
	}
	if reply.ID != wantID {
		t.Errorf("reply id %s, want %s", reply.ID, wantID)
	}
	// The same event again, with the next key of a rotation: a duplicate,
	// still one message.
	code, body = post(t, e.url+"/events/transport.messageReceived", msgEvent, "X-API-KEY", nextKey)
	if code != 200 || !strings.Contains(string(body), `"duplicate"`) {
		t.Errorf("second POST: %d %s", code, body)
	}
	if n := e.count(t); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

func TestIngestRoutes(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	// The Connector's {{trigger}} URL form, a trigger only in the URL, a
	// connector of its own, and an event without data.
	cases := []struct {
		path, body, subject, source, data string
	}{
		{"/events/consumption.attributeCreated", `{"trigger":"consumption.attributeCreated","data":{"id":"ATT1"}}`, "enmeshed.consumption.attributeCreated", "enmeshed-connector", `{"id":"ATT1"}`},
		{"/events/consumption.attributeDeleted", `{"data":{"id":"ATT1"}}`, "enmeshed.consumption.attributeDeleted", "enmeshed-connector", `{"id":"ATT1"}`},
		{"/connectors/acme-prod/events", `{"trigger":"transport.messageSent","data":{"id":"MSG2"}}`, "enmeshed.transport.messageSent", "acme-prod", `{"id":"MSG2"}`},
		{"/connectors/acme-prod/events/runtime.modulesStarted", `{"trigger":"runtime.modulesStarted"}`, "enmeshed.runtime.modulesStarted", "acme-prod", ``},
	}
	for i, c := range cases {
		code, body := post(t, e.url+c.path, c.body)
		if code != 200 {
			t.Fatalf("%s: %d %s", c.path, code, body)
		}
		m, err := e.stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != c.subject || m.Header.Get("ce-source") != c.source || string(m.Data) != c.data {
			t.Errorf("%s: %s source=%s data=%q", c.path, m.Subject, m.Header.Get("ce-source"), m.Data)
		}
	}
}

func TestIngestBulk(t *testing.T) {
	e := setup(t)
	body := `[` + msgEvent + `,{"trigger":"transport.messageSent","data":{"id":"MSG9"}},{"trigger":"a b"},` + msgEvent + `]`
	code, b := post(t, e.url+"/events", body)
	if code != http.StatusMultiStatus {
		t.Fatalf("status %d: %s", code, b)
	}
	var reply struct {
		Results []struct {
			ID, Status string
			Error      *struct{ Code, Message string }
		}
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, r := range reply.Results {
		statuses = append(statuses, r.Status)
	}
	// The two copies of one event race: one is published, one a duplicate.
	got := strings.Join(statuses, ",")
	if got != "published,published,error,duplicate" && got != "duplicate,published,error,published" {
		t.Errorf("statuses = %s", got)
	}
	if reply.Results[2].Error == nil || reply.Results[2].Error.Code != producer.CodeInvalidTrigger {
		t.Errorf("bad item: %+v", reply.Results[2])
	}
	if n := e.count(t); n != 2 {
		t.Errorf("stream holds %d, want 2", n)
	}
	code, b = post(t, e.url+"/events", `[{"trigger":"transport.messageSent","data":{"id":"MSG10"}}]`)
	if code != 200 {
		t.Errorf("all stored: %d %s", code, b)
	}
	// A full stream stores nothing more: not a 2xx, so the sender retries.
	cfg := e.stream.CachedInfo().Config
	cfg.MaxMsgs = 3
	if _, err := e.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	code, b = post(t, e.url+"/events", `[{"trigger":"transport.messageSent","data":{"id":"MSG11"}},{"trigger":"transport.messageSent","data":{"id":"MSG12"}}]`)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), producer.CodeUnavailable) {
		t.Errorf("stream full for part of a bulk: %d %s, want 503", code, b)
	}
	if n := e.count(t); n != 3 {
		t.Errorf("stream holds %d, want 3 (full)", n)
	}
}

// Every bad input gets its status and error body, and nothing is published.
func TestIngestBadInput(t *testing.T) {
	e := setup(t)
	long := strings.Repeat("x", 300)
	tests := []struct {
		name, path, body string
		headers          []string
		status           int
		code             string
	}{
		{"malformed JSON", "/events", `{"trigger":"transport.messageReceived","data":`, nil, 400, producer.CodeInvalidJSON},
		{"not an object", "/events", `"transport.messageReceived"`, nil, 400, producer.CodeInvalidJSON},
		{"trailing data", "/events", msgEvent + `{}`, nil, 400, producer.CodeInvalidJSON},
		{"empty body", "/events", ``, nil, 400, producer.CodeInvalidJSON},
		{"missing trigger", "/events", `{"data":{"id":"x"}}`, nil, 400, producer.CodeInvalidTrigger},
		{"trigger not a string", "/events", `{"trigger":5}`, nil, 400, producer.CodeInvalidTrigger},
		{"wildcard trigger", "/events", `{"trigger":"transport.>"}`, nil, 400, producer.CodeInvalidTrigger},
		{"star trigger", "/events", `{"trigger":"transport.*"}`, nil, 400, producer.CodeInvalidTrigger},
		{"space in trigger", "/events", `{"trigger":"a b"}`, nil, 400, producer.CodeInvalidTrigger},
		{"empty token", "/events", `{"trigger":"transport..x"}`, nil, 400, producer.CodeInvalidTrigger},
		{"300 characters", "/events", `{"trigger":"` + long + `"}`, nil, 400, producer.CodeInvalidTrigger},
		{"empty trigger", "/events", `{"trigger":""}`, nil, 400, producer.CodeInvalidTrigger},
		{"bad URL trigger", "/events/transport..x", msgEvent, nil, 400, producer.CodeInvalidTrigger},
		{"URL trigger differs", "/events/transport.messageSent", msgEvent, nil, 400, producer.CodeTriggerMismatch},
		{"unknown field", "/events", `{"trigger":"transport.messageReceived","payload":{"id":"x"}}`, nil, 400, producer.CodeInvalidBody},
		{"bad connector", "/connectors/a.b/events", msgEvent, nil, 400, producer.CodeInvalidConnector},
		{"empty bulk", "/events", `[]`, nil, 400, producer.CodeInvalidBody},
		{"bulk not JSON", "/events", `[{"trigger":"x"},`, nil, 400, producer.CodeInvalidJSON},
		{"wrong key", "/events", msgEvent, []string{"X-API-KEY", "wrong"}, 401, producer.CodeUnauthorized},
		{"two keys in one", "/events", msgEvent, []string{"X-API-KEY", testKey + " " + nextKey}, 401, producer.CodeUnauthorized},
		{"missing key", "/events", msgEvent, []string{"X-API-KEY", ""}, 401, producer.CodeUnauthorized},
		{"too large", "/events", `{"trigger":"transport.messageReceived","data":{"x":"` + strings.Repeat("a", 5000) + `"}}`, nil, 413, producer.CodeTooLarge},
		{"form content type", "/events", msgEvent, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, producer.CodeMediaType},
		{"no content type", "/events", msgEvent, []string{"Content-Type", ""}, 415, producer.CodeMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, e.url+tt.path, tt.body, tt.headers...)
			var reply struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(body, &reply); err != nil {
				t.Fatalf("body %q is not the error envelope: %v", body, err)
			}
			if code != tt.status || reply.Error.Code != tt.code || reply.Error.Message == "" {
				t.Errorf("got %d %s, want %d %s", code, body, tt.status, tt.code)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /events: %d", resp.StatusCode)
	}
	if n := e.count(t); n != 0 {
		t.Errorf("bad input published %d messages", n)
	}
}

// JSON text is UTF-8 (RFC 8259): a body with invalid UTF-8 inside a string
// of its data, single or in a bulk array, is refused whole with 400
// invalid_json and publishes nothing (json.Valid alone accepts it, and the
// bytes would be stored as they came). Valid non-ASCII text is accepted.
func TestIngestRefusesInvalidUTF8(t *testing.T) {
	e := setup(t)
	for name, body := range map[string]string{
		"single":           `{"trigger":"transport.messageReceived","data":{"id":"MSG1","subject":"caf` + "\xe9" + `"}}`,
		"truncated":        `{"trigger":"transport.messageReceived","data":{"id":"MSG2","subject":"5 ` + "\xe2\x82" + `"}}`,
		"surrogate":        `{"trigger":"transport.messageReceived","data":{"id":"MSG3","subject":"` + "\xed\xa0\x80" + `"}}`,
		"in a key":         `{"trigger":"transport.messageReceived","data":{"` + "\xff" + `":1}}`,
		"bulk":             `[` + msgEvent + `,{"trigger":"transport.messageSent","data":{"id":"MSG4","subject":"` + "\xff\xfe" + `"}}]`,
		"bulk, first item": `[{"trigger":"transport.messageSent","data":{"id":"MSG5","subject":"` + "\xc3" + `"}},` + msgEvent + `]`,
	} {
		code, b := post(t, e.url+"/events", body)
		var reply struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(b, &reply)
		if code != 400 || reply.Error.Code != producer.CodeInvalidJSON || !strings.Contains(reply.Error.Message, "UTF-8") {
			t.Errorf("%s: %d %s, want 400 invalid_json naming UTF-8", name, code, b)
		}
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("invalid UTF-8 published %d messages", n)
	}
	code, b := post(t, e.url+"/events", `{"trigger":"transport.messageReceived","data":{"id":"MSG6","subject":"café 5 € 😀 \ud83d\ude00"}}`)
	if code != 200 {
		t.Errorf("valid UTF-8: %d %s", code, b)
	}
}

// What docs/contract.md says of malformed trace headers holds: a header
// value with a control character other than tab gets a plain-text 400 from
// Go's HTTP server before ingest sees the request (no JSON error body,
// nothing stored); a tab or a non-ASCII byte reaches ingest, which stores
// the event without the header.
func TestIngestMalformedTraceHeaders(t *testing.T) {
	e := setup(t)
	addr := strings.TrimPrefix(e.url, "http://")
	send := func(corr, body string) (int, string, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Raw: Go's client refuses to send such a header.
		fmt.Fprintf(c, "POST /events HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-API-KEY: %s\r\n"+
			"X-Correlation-Id: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", addr, testKey, corr, len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, v := range []string{"corr\x01", "corr\x00x", "corr\x7f"} {
		if code, ct, b := send(v, msgEvent); code != 400 || strings.Contains(ct, "json") {
			t.Errorf("%q: %d %s %q, want Go's plain-text 400", v, code, ct, b)
		}
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d events stored", n)
	}
	for i, v := range []string{"corr\tx", "caf\xe9"} {
		if code, _, b := send(v, `{"trigger":"transport.messageSent","data":{"id":"MSG`+fmt.Sprint(i)+`"}}`); code != 200 {
			t.Errorf("%q: %d %s, want the event stored without the header", v, code, b)
		}
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := e.stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if h := m.Header.Get("x-correlation-id"); h != "" {
			t.Errorf("seq %d: x-correlation-id %q kept", seq, h)
		}
	}
}

// The server's limit and the body limit agree: the largest accepted body
// is published, not refused at publish.
func TestIngestLargestBodyIsPublished(t *testing.T) {
	e := setup(t, func(c *producer.IngestConfig) { c.MaxBody = 0 })
	limit := int(e.nc.MaxPayload()) - producer.HeaderReserve
	prefix := `{"trigger":"consumption.attributeCreated","data":{"x":"`
	body := prefix + strings.Repeat("a", limit-len(prefix)-3) + `"}}`
	if len(body) != limit {
		t.Fatalf("body %d, limit %d", len(body), limit)
	}
	long := strings.Repeat("c", 256)
	code, b := post(t, e.url+"/connectors/"+long[:200]+"/events", body, "X-Correlation-Id", long)
	if code != 200 {
		t.Fatalf("largest body: %d %s", code, b)
	}
	// With Expect: 100-continue the refused body is never sent, so a
	// server closing the connection under a client still writing 1 MB
	// cannot turn the 413 into a connection reset.
	code, _ = post(t, e.url+"/events", body[:len(body)-2]+`a"}}`, "Expect", "100-continue")
	if code != 413 {
		t.Errorf("one byte over: %d", code)
	}
	if _, err := (producer.IngestConfig{MaxBody: 2 << 20}).BodyLimit(e.nc.MaxPayload()); err == nil || !strings.Contains(err.Error(), "INGEST_MAX_BODY") {
		t.Errorf("a limit above max payload: %v", err)
	}
}

func TestIngestUnavailable(t *testing.T) {
	t.Run("stream full", func(t *testing.T) {
		e := setup(t)
		ctx := context.Background()
		cfg := e.stream.CachedInfo().Config
		cfg.MaxMsgs = 1
		if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if code, b := post(t, e.url+"/events", msgEvent); code != 200 {
			t.Fatalf("first: %d %s", code, b)
		}
		code, b := post(t, e.url+"/events", `{"trigger":"transport.messageReceived","data":{"id":"MSGnew"}}`)
		if code != 503 || !strings.Contains(string(b), producer.CodeUnavailable) {
			t.Errorf("full stream: %d %s", code, b)
		}
		// Nothing already stored was dropped.
		if m, err := e.stream.GetMsg(ctx, 1); err != nil || string(m.Data) != msgData || e.count(t) != 1 {
			t.Errorf("stored event lost: %v", err)
		}
	})
	t.Run("no stream", func(t *testing.T) {
		e := setup(t)
		if err := e.js.DeleteStream(context.Background(), streams.Events); err != nil {
			t.Fatal(err)
		}
		code, b := post(t, e.url+"/events", msgEvent)
		if code != 503 || !strings.Contains(string(b), producer.CodeUnavailable) {
			t.Errorf("no stream: %d %s", code, b)
		}
	})
	t.Run("ack timeout", func(t *testing.T) {
		// No stream, but a plain subscriber takes the subject: the publish
		// reaches the server and no acknowledgement ever comes back.
		e := setupWith(t, producer.PublisherConfig{Timeout: 300 * time.Millisecond, Attempts: 2})
		if err := e.js.DeleteStream(context.Background(), streams.Events); err != nil {
			t.Fatal(err)
		}
		var got atomic.Int32
		sub, err := e.nc.Subscribe("enmeshed.>", func(*nats.Msg) { got.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := e.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		code, b := post(t, e.url+"/events", msgEvent)
		if code != 503 || !strings.Contains(string(b), producer.CodeUnavailable) || !strings.Contains(string(b), "timeout") {
			t.Errorf("ack timeout: %d %s", code, b)
		}
		if n := got.Load(); n != 2 { // PUBLISH_ATTEMPTS=2, each with the same event
			t.Errorf("%d publish attempts reached the server, want 2", n)
		}
	})
}

func TestIngestConfigValidate(t *testing.T) {
	ok := producer.IngestConfig{Addr: "127.0.0.1:8080", APIKeyHeader: "X-API-KEY", ConnectorID: "enmeshed-connector"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		change func(*producer.IngestConfig)
		want   string
	}{
		"public without key": {func(c *producer.IngestConfig) { c.Addr = ":8080" }, "INGEST_API_KEY"},
		"public IP":          {func(c *producer.IngestConfig) { c.Addr = "0.0.0.0:8080" }, "INGEST_API_KEY"},
		"bad addr":           {func(c *producer.IngestConfig) { c.Addr = "8080" }, "INGEST_ADDR"},
		"bad source":         {func(c *producer.IngestConfig) { c.ConnectorID = "a b" }, "CONNECTOR_ID"},
		"bad header":         {func(c *producer.IngestConfig) { c.APIKeyHeader = "X: Y" }, "INGEST_API_KEY_HEADER"},
		"blank key, public":  {func(c *producer.IngestConfig) { c.Addr, c.APIKey = "0.0.0.0:8080", " \t" }, "only whitespace"},
		"blank key, local":   {func(c *producer.IngestConfig) { c.APIKey = " " }, "only whitespace"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := ok
	c.Addr, c.APIKey = ":8080", "secret"
	if err := c.Validate(); err != nil {
		t.Errorf("public with key: %v", err)
	}
}

func TestValidTraceparent(t *testing.T) {
	for s, want := range map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":     true,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":     false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":     false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":     false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz": false,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz": true,
		"garbage": false,
	} {
		if producer.ValidTraceparent(s) != want {
			t.Errorf("%s: want %v", s, want)
		}
	}
}
