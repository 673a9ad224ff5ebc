package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
)

// testData has white space and HTML-ish characters, which a JSON encoder
// would compact or escape: the body must carry it byte for byte.
const testData = `{"id": "MSG1",  "note": "<a&b>"}`

// testEvent returns an event of transport.messageReceived with data (""
// for an event without data).
func testEvent(data string) router.Event {
	e := router.Event{
		ID:            "0123456789abcdef0123456789abcdef",
		Namespace:     "transport.messageReceived",
		Source:        "enmeshed-connector",
		Time:          time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC),
		Origin:        router.OriginWebhook,
		CorrelationID: "corr-1",
		Traceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

// received is one request as the receiver saw it.
type received struct {
	RequestURI string
	Method     string
	Header     http.Header
	Body       []byte
	At         time.Time
}

// receiver is a real HTTP server that records every request and answers
// with answer (nil: 200).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, answer http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, received{req.RequestURI, req.Method, req.Header.Clone(), body, at})
		r.mu.Unlock()
		if answer != nil {
			answer(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// requests returns the requests received so far.
func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// only returns the single request received, failing the test otherwise.
func (r *receiver) only(t *testing.T) received {
	t.Helper()
	reqs := r.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// answer returns a handler answering status with body and headers
// (name, value pairs).
func answer(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// loadConfig parses vars the way a main does, so the struct tags and
// their defaults are under test too.
func loadConfig(t *testing.T, vars map[string]string) Config {
	t.Helper()
	c, err := env.ParseAsWithOptions[Config](env.Options{Environment: vars})
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	return c
}

// mustSender loads vars and returns a Sender for them.
func mustSender(t *testing.T, vars map[string]string) *Sender {
	t.Helper()
	s, err := NewSender(loadConfig(t, vars), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s
}

// kind names the fate an error asks for.
func kind(err error) string {
	var retry *consumers.RetryError
	switch {
	case err == nil:
		return "ok"
	case consumers.IsPause(err):
		return "pause"
	case consumers.IsPermanent(err):
		return "permanent"
	case errors.As(err, &retry):
		return "retry"
	default:
		return "unclassified"
	}
}

func TestConfigDefaults(t *testing.T) {
	c := loadConfig(t, map[string]string{"WEBHOOK_URL": "https://example.com/hook"})
	if c.Format != FormatEnmeshed || c.Triggers != "**" || c.APIKeyHeader != "X-API-KEY" ||
		c.Timeout != 10*time.Second || c.RateLimit != 0 || c.RateBurst != 1 ||
		fmt.Sprint(c.RetryableStatus) != "[408 425]" {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestSendFormats(t *testing.T) {
	ceTime := "2025-03-04T05:06:07.89Z"
	id := testEvent("").ID
	tests := []struct {
		name   string
		format Format
		data   string
		body   string
		header map[string]string // "" means absent
	}{
		{
			name: "enmeshed", format: FormatEnmeshed, data: testData,
			body:   `{"trigger":"transport.messageReceived","data":` + testData + `}`,
			header: map[string]string{"Content-Type": "application/json", "ce-id": ""},
		},
		{
			name: "enmeshed without data", format: FormatEnmeshed,
			body:   `{"trigger":"transport.messageReceived"}`,
			header: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "cloudevents binary", format: FormatCloudEvents, data: testData,
			body: testData,
			header: map[string]string{
				"Content-Type":       "application/json",
				"ce-specversion":     "1.0",
				"ce-id":              id,
				"ce-type":            "transport.messageReceived",
				"ce-source":          "enmeshed-connector",
				"ce-time":            ceTime,
				"ce-datacontenttype": "",
			},
		},
		{
			name: "cloudevents binary without data", format: FormatCloudEvents,
			body:   "",
			header: map[string]string{"Content-Type": "", "ce-id": id, "ce-type": "transport.messageReceived", "ce-datacontenttype": ""},
		},
		{
			name: "cloudevents structured", format: FormatCloudEventsStructured, data: testData,
			body: `{"specversion":"1.0","id":"` + id + `","source":"enmeshed-connector","type":"transport.messageReceived",` +
				`"time":"` + ceTime + `","datacontenttype":"application/json","data":` + testData + `}`,
			header: map[string]string{"Content-Type": "application/cloudevents+json", "ce-id": ""},
		},
		{
			name: "cloudevents structured without data", format: FormatCloudEventsStructured,
			body: `{"specversion":"1.0","id":"` + id + `","source":"enmeshed-connector","type":"transport.messageReceived",` +
				`"time":"` + ceTime + `","datacontenttype":"application/json"}`,
			header: map[string]string{"Content-Type": "application/cloudevents+json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, nil)
			s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL + "/hook", "WEBHOOK_FORMAT": string(tt.format)})
			res, err := s.Send(t.Context(), testEvent(tt.data))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res.Status != http.StatusOK {
				t.Errorf("Result.Status = %d", res.Status)
			}
			req := rcv.only(t)
			if req.Method != http.MethodPost || req.RequestURI != "/hook" {
				t.Errorf("request %s %s", req.Method, req.RequestURI)
			}
			if string(req.Body) != tt.body {
				t.Errorf("body\n got %s\nwant %s", req.Body, tt.body)
			}
			if len(req.Body) > 0 && !json.Valid(req.Body) {
				t.Errorf("body is not valid JSON")
			}
			want := map[string]string{
				"User-Agent":        "eventmesh-webhook",
				"x-correlation-id":  "corr-1",
				"traceparent":       testEvent("").Traceparent,
				"webhook-id":        id,
				"Authorization":     "",
				"webhook-signature": "",
			}
			for k, v := range tt.header {
				want[k] = v
			}
			for k, v := range want {
				got := req.Header.Values(k)
				switch {
				case v == "" && len(got) > 0:
					t.Errorf("header %s = %q, want none", k, got)
				case v != "" && (len(got) != 1 || got[0] != v):
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestSendInvalidDataIsPermanent(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL})
	_, err := s.Send(t.Context(), testEvent(`{"id":`))
	if kind(err) != "permanent" {
		t.Fatalf("Send = %v (%s), want permanent", err, kind(err))
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("receiver got %d requests, want none", n)
	}
}

func TestSendSignature(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := mustSender(t, map[string]string{
		"WEBHOOK_URL":    rcv.URL,
		"WEBHOOK_SECRET": signSecretA + " " + signSecretB,
	})
	e := testEvent(testData)
	before := time.Now()
	if _, err := s.Send(t.Context(), e); err != nil {
		t.Fatalf("Send: %v", err)
	}
	after := time.Now()
	req := rcv.only(t)

	// Each receiver holds one of the two secrets; both must accept.
	for _, secret := range []string{signSecretA, signSecretB} {
		if err := Verify(secret, req.Header, req.Body, time.Minute, time.Now()); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if n := len(strings.Fields(req.Header.Get(HeaderSignature))); n != 2 {
		t.Errorf("%s has %d signatures, want 2", HeaderSignature, n)
	}
	if got := req.Header.Get(HeaderID); got != e.ID {
		t.Errorf("%s = %q, want the event id %q", HeaderID, got, e.ID)
	}
	ts, err := strconv.ParseInt(req.Header.Get(HeaderTimestamp), 10, 64)
	if err != nil || ts < before.Unix() || ts > after.Unix() {
		t.Errorf("%s = %q, want the attempt's time in [%d, %d]", HeaderTimestamp, req.Header.Get(HeaderTimestamp), before.Unix(), after.Unix())
	}
}

func TestSendTriggerInURL(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL + "/hooks/{{trigger}}?t={{trigger}}&k=v"})
	if _, err := s.Send(t.Context(), testEvent(testData)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := "/hooks/transport.messageReceived?t=transport.messageReceived&k=v"
	if got := rcv.only(t).RequestURI; got != want {
		t.Errorf("request URI %q, want %q", got, want)
	}
}

func TestSendStaticHeadersAndAPIKey(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := mustSender(t, map[string]string{
		"WEBHOOK_URL":     rcv.URL,
		"WEBHOOK_HEADERS": "X-Tenant: t1; X-Words:  a b c \r\nX-Multi: 1\nX-Multi: 2\n",
		"WEBHOOK_API_KEY": "key-0123456789",
	})
	if _, err := s.Send(t.Context(), testEvent(testData)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	h := rcv.only(t).Header
	for name, want := range map[string]string{"X-Tenant": "[t1]", "X-Words": "[a b c]", "X-Multi": "[1 2]", "X-Api-Key": "[key-0123456789]"} {
		if got := fmt.Sprint(h.Values(name)); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
}

func TestSendAPIKeyHeaderName(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := mustSender(t, map[string]string{
		"WEBHOOK_URL":            rcv.URL,
		"WEBHOOK_API_KEY":        "Bearer 0123456789",
		"WEBHOOK_API_KEY_HEADER": "Authorization",
	})
	if _, err := s.Send(t.Context(), testEvent(testData)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	h := rcv.only(t).Header
	if got := h.Get("Authorization"); got != "Bearer 0123456789" {
		t.Errorf("Authorization = %q", got)
	}
	if got := h.Values("X-API-KEY"); len(got) != 0 {
		t.Errorf("X-API-KEY = %q, want none", got)
	}
}

// tokenServer is an OAuth 2.0 token endpoint for the client credentials
// grant that hands out tok-1, tok-2, … and counts its fetches.
type tokenServer struct {
	*httptest.Server
	fetches atomic.Int32
}

const (
	testClientID     = "mesh-client"
	testClientSecret = "client-s3cret-value"
)

func newTokenServer(t *testing.T, fail bool) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"unknown client"}`)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("token request: %v", err)
		}
		if got := r.PostForm.Get("grant_type"); got != "client_credentials" {
			t.Errorf("grant_type = %q, want client_credentials", got)
		}
		// RFC 6749 §2.3.1 allows the credentials in basic auth or in the form.
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != testClientID || secret != testClientSecret {
			t.Errorf("client credentials %q / %q", id, secret)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if got := r.PostForm.Get("scope"); got != "events:write audit" {
			t.Errorf("scope = %q", got)
		}
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":3600}`, n)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func oauthVars(receiverURL, tokenURL string) map[string]string {
	return map[string]string{
		"WEBHOOK_URL":                  receiverURL,
		"WEBHOOK_OAUTH2_TOKEN_URL":     tokenURL,
		"WEBHOOK_OAUTH2_CLIENT_ID":     testClientID,
		"WEBHOOK_OAUTH2_CLIENT_SECRET": testClientSecret,
		"WEBHOOK_OAUTH2_SCOPES":        "events:write  audit",
	}
}

func TestSendOAuth2(t *testing.T) {
	tokens := newTokenServer(t, false)
	rcv := newReceiver(t, nil)
	s := mustSender(t, oauthVars(rcv.URL, tokens.URL+"/token"))
	for range 3 {
		if _, err := s.Send(t.Context(), testEvent(testData)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for i, req := range rcv.requests() {
		if got := req.Header.Get("Authorization"); got != "Bearer tok-1" {
			t.Errorf("request %d: Authorization = %q, want Bearer tok-1", i+1, got)
		}
	}
	if n := tokens.fetches.Load(); n != 1 {
		t.Errorf("token fetched %d times, want once (cached)", n)
	}
}

func TestSendOAuth2RejectedTokenIsReplaced(t *testing.T) {
	tokens := newTokenServer(t, false)
	var calls atomic.Int32
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	s := mustSender(t, oauthVars(rcv.URL, tokens.URL))
	if _, err := s.Send(t.Context(), testEvent(testData)); kind(err) != "retry" {
		t.Fatalf("first Send = %v (%s), want retry", err, kind(err))
	}
	if _, err := s.Send(t.Context(), testEvent(testData)); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	reqs := rcv.requests()
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer tok-2" {
		t.Errorf("after a 401: Authorization = %q, want a fresh token", got)
	}
}

func TestSendOAuth2TokenFailureIsRetried(t *testing.T) {
	tokens := newTokenServer(t, true)
	rcv := newReceiver(t, nil)
	s := mustSender(t, oauthVars(rcv.URL, tokens.URL))
	_, err := s.Send(t.Context(), testEvent(testData))
	if kind(err) != "retry" {
		t.Fatalf("Send = %v (%s), want retry", err, kind(err))
	}
	if !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), testClientSecret) {
		t.Errorf("error %q: want the OAuth error code and no secret", err)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("receiver got %d requests without a token", n)
	}
}

func TestSendClassification(t *testing.T) {
	httpDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		status    int
		header    []string
		retryable string // WEBHOOK_RETRYABLE_STATUS; "" for the default
		want      string
		minAfter  time.Duration
		maxAfter  time.Duration
	}{
		{status: 200, want: "ok"},
		{status: 201, want: "ok"},
		{status: 204, want: "ok"},
		{status: 400, want: "permanent"},
		{status: 401, want: "permanent"},
		{status: 404, want: "permanent"},
		{status: 409, want: "permanent"},
		{status: 409, retryable: "408,409,425", want: "retry"},
		{status: 408, want: "retry"},
		{status: 425, want: "retry"},
		{status: 410, want: "pause"},
		{status: 429, header: []string{"Retry-After", "7"}, want: "retry", minAfter: 7 * time.Second, maxAfter: 7 * time.Second},
		{status: 429, want: "retry"},
		// An HTTP-date has whole seconds, and a moment passes before Send
		// reads it.
		{status: 503, header: []string{"Retry-After", httpDate}, want: "retry", minAfter: 25 * time.Second, maxAfter: 30 * time.Second},
		{status: 500, want: "retry"},
		{status: 502, want: "retry"},
		{status: 504, want: "retry"},
	}
	for _, tt := range tests {
		name := strconv.Itoa(tt.status)
		if tt.retryable != "" {
			name += " retryable " + tt.retryable
		}
		if len(tt.header) > 0 {
			name += " " + tt.header[0]
		}
		t.Run(name, func(t *testing.T) {
			body := "answer " + strconv.Itoa(tt.status)
			rcv := newReceiver(t, answer(tt.status, body, tt.header...))
			vars := map[string]string{"WEBHOOK_URL": rcv.URL}
			if tt.retryable != "" {
				vars["WEBHOOK_RETRYABLE_STATUS"] = tt.retryable
			}
			s := mustSender(t, vars)
			res, err := s.Send(t.Context(), testEvent(testData))
			if got := kind(err); got != tt.want {
				t.Fatalf("Send = %v (%s), want %s", err, got, tt.want)
			}
			wantBody := body
			if tt.status == http.StatusNoContent {
				wantBody = "" // net/http drops a 204's body
			}
			if res.Status != tt.status || res.Body != wantBody {
				t.Errorf("Result = %+v", res)
			}
			if after := consumers.RetryAfter(err); after < tt.minAfter || after > tt.maxAfter || after != res.RetryAfter {
				t.Errorf("RetryAfter = %s (Result %s), want %s to %s", after, res.RetryAfter, tt.minAfter, tt.maxAfter)
			}
			if err == nil {
				return
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tt.status {
				t.Errorf("error %v: want a *StatusError with status %d", err, tt.status)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tt.status)) || !strings.Contains(err.Error(), body) {
				t.Errorf("error %q: want the status and the body excerpt", err)
			}
			if tt.status == http.StatusGone && !strings.Contains(err.Error(), "eventmesh consumer resume "+s.cfg.DurableName()) {
				t.Errorf("error %q: want the resume command", err)
			}
		})
	}
}

func TestSendRedirectIsNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			target := newReceiver(t, nil)
			rcv := newReceiver(t, answer(status, "", "Location", target.URL+"/final?token=loc-s3cret"))
			s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL})
			_, err := s.Send(t.Context(), testEvent(testData))
			if kind(err) != "permanent" {
				t.Fatalf("Send = %v (%s), want permanent", err, kind(err))
			}
			if msg := err.Error(); !strings.Contains(msg, target.URL+"/final") || strings.Contains(msg, "loc-s3cret") {
				t.Errorf("error %q: want the Location without its query", msg)
			}
			if n := len(target.requests()); n != 0 {
				t.Errorf("redirect target got %d requests, want none", n)
			}
		})
	}
}

func TestSendTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	// Cleanups run last-in first-out: the handler is released before the
	// server's Close waits for it.
	t.Cleanup(func() { close(release) })
	s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL, "WEBHOOK_TIMEOUT": "100ms"})
	_, err := s.Send(t.Context(), testEvent(testData))
	if kind(err) != "retry" || consumers.RetryAfter(err) != 0 {
		t.Fatalf("Send = %v (%s), want retry by the schedule", err, kind(err))
	}
	if !strings.Contains(err.Error(), "WEBHOOK_TIMEOUT") {
		t.Errorf("error %q: want it to name WEBHOOK_TIMEOUT", err)
	}
}

func TestSendConnectionRefusedIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := mustSender(t, map[string]string{"WEBHOOK_URL": "http://" + addr + "/hook?token=q-s3cret"})
	_, err = s.Send(t.Context(), testEvent(testData))
	if kind(err) != "retry" {
		t.Fatalf("Send = %v (%s), want retry", err, kind(err))
	}
	if strings.Contains(err.Error(), "q-s3cret") {
		t.Errorf("error %q contains the URL's query", err)
	}
}

func TestSendRateLimit(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL, "WEBHOOK_RATE_LIMIT": "20", "WEBHOOK_RATE_BURST": "1"})
	const n = 6
	start := time.Now()
	for range n {
		if _, err := s.Send(t.Context(), testEvent(testData)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	reqs := rcv.requests()
	if len(reqs) != n {
		t.Fatalf("receiver got %d requests, want %d", len(reqs), n)
	}
	// The limiter's bucket starts full (one token, the burst), so the
	// first request goes at once and each further one 1/20 s after the one
	// before: the last cannot reach the server before start + 5 × 50ms.
	// (Measuring from the first request's arrival instead would let the
	// first connection's dial shave off a little.)
	want := (n - 1) * time.Second / 20
	if got := reqs[n-1].At.Sub(start); got < want {
		t.Errorf("last request arrived %s after the first send, want at least %s", got, want)
	}
	for i := 1; i < n; i++ {
		t.Logf("gap %d: %s", i, reqs[i].At.Sub(reqs[i-1].At))
	}
}

func TestSendRedactsSecretsInExcerpt(t *testing.T) {
	const key = "echoed-api-key-123"
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		// Echo the request's key, and more than an excerpt holds.
		fmt.Fprintf(w, "bad request with key %s %s", r.Header.Get("X-API-KEY"), strings.Repeat("é", 600))
	})
	s := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL, "WEBHOOK_API_KEY": key})
	res, err := s.Send(t.Context(), testEvent(testData))
	if kind(err) != "permanent" {
		t.Fatalf("Send = %v (%s), want permanent", err, kind(err))
	}
	if strings.Contains(err.Error(), key) || strings.Contains(res.Body, key) || !strings.Contains(res.Body, "[redacted]") {
		t.Errorf("excerpt %q: want the key redacted", res.Body)
	}
	if len(res.Body) > 512 || !strings.HasSuffix(res.Body, "é") {
		t.Errorf("excerpt is %d bytes, want at most 512, cut at a rune boundary", len(res.Body))
	}
}

func TestHandler(t *testing.T) {
	var fail atomic.Bool
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	h := mustSender(t, map[string]string{"WEBHOOK_URL": rcv.URL}).Handler()
	d := consumers.Delivery{Event: testEvent(testData), Subject: "enmeshed.transport.messageReceived", StreamSeq: 7, Attempt: 1}
	if err := h.Handle(t.Context(), d); err != nil {
		t.Errorf("Handle: %v", err)
	}
	fail.Store(true)
	if err := h.Handle(t.Context(), d); !consumers.IsPermanent(err) {
		t.Errorf("Handle = %v, want permanent", err)
	}
	if n := len(rcv.requests()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := map[string]time.Duration{
		"":                     0,
		"7":                    7 * time.Second,
		" 7 ":                  7 * time.Second,
		"0":                    0,
		"-1":                   0,
		"soon":                 0,
		"99999999999999":       time.Hour,
		date(30 * time.Second): 30 * time.Second,
		date(-time.Minute):     0,
		date(2 * time.Hour):    time.Hour,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDurableName(t *testing.T) {
	name := func(url string) string { return Config{URL: url}.DurableName() }
	base := name("https://hooks.example.com/enmeshed")

	sum := sha256.Sum256([]byte("https://hooks.example.com/enmeshed"))
	if want := "webhook-" + hex.EncodeToString(sum[:4]); base != want {
		t.Errorf("DurableName = %q, want %q", base, want)
	}
	// A fixed value as well: stored durables depend on this never changing.
	if base != "webhook-d218aeea" {
		t.Errorf("DurableName = %q, want webhook-d218aeea", base)
	}
	if !regexp.MustCompile(`^webhook-[0-9a-f]{8}$`).MatchString(base) || router.ValidateToken(base) != nil {
		t.Errorf("DurableName %q is not webhook-<8 hex> or not a subject token", base)
	}
	for _, same := range []string{
		"https://hooks.example.com/enmeshed",
		"https://hooks.example.com/enmeshed?token=abc",
		"https://hooks.example.com/enmeshed?token=rotated#frag",
		"https://bob:pw@hooks.example.com/enmeshed",
		"HTTPS://Hooks.Example.COM/enmeshed",
	} {
		if got := name(same); got != base {
			t.Errorf("DurableName(%q) = %q, want %q", same, got, base)
		}
	}
	if name("https://hooks.example.com") != name("https://hooks.example.com/") {
		t.Errorf("an empty path and / name the same endpoint")
	}
	seen := map[string]string{base: "base"}
	for _, other := range []string{
		"https://hooks.example.com/other",
		"https://hooks.example.com/enmeshed/",
		"https://hooks.example.com/{{trigger}}",
		"https://other.example.com/enmeshed",
		"https://hooks.example.com:8443/enmeshed",
		"http://hooks.example.com/enmeshed",
	} {
		got := name(other)
		if prev, dup := seen[got]; dup {
			t.Errorf("DurableName(%q) = %q, the same as for %s", other, got, prev)
		}
		seen[got] = other
	}
	if got := (Config{URL: "https://hooks.example.com/enmeshed", Durable: "crm-hook"}).DurableName(); got != "crm-hook" {
		t.Errorf("with WEBHOOK_DURABLE: %q, want crm-hook", got)
	}
}

// Secret values used in TestValidate; none may appear in an error.
var validateSecrets = []string{"pw-s3cret", "q-s3cret", "hdr-s3cret", "key-s3cret", "oauth-s3cret", "AAECAwQF"}

func TestValidate(t *testing.T) {
	good := func(extra ...string) map[string]string {
		vars := map[string]string{"WEBHOOK_URL": "https://hooks.example.com/x?token=q-s3cret"}
		for i := 0; i+1 < len(extra); i += 2 {
			vars[extra[i]] = extra[i+1]
		}
		return vars
	}
	for name, vars := range map[string]map[string]string{
		"defaults":          good(),
		"disabled":          {},
		"trigger in path":   good("WEBHOOK_URL", "http://127.0.0.1:8080/hooks/{{trigger}}?t={{trigger}}"),
		"everything":        good("WEBHOOK_SECRET", signSecretA+" "+signSecretB, "WEBHOOK_FORMAT", "cloudevents", "WEBHOOK_TRIGGERS", "transport.*, consumption.**", "WEBHOOK_DURABLE", "crm", "WEBHOOK_HEADERS", "X-A: 1;X-B: 2", "WEBHOOK_API_KEY", "key", "WEBHOOK_OAUTH2_TOKEN_URL", "https://id.example.com/token", "WEBHOOK_OAUTH2_CLIENT_ID", "c", "WEBHOOK_OAUTH2_CLIENT_SECRET", "s", "WEBHOOK_OAUTH2_SCOPES", "a b", "WEBHOOK_RATE_LIMIT", "0.5", "WEBHOOK_RATE_BURST", "3", "WEBHOOK_RETRYABLE_STATUS", "408,409,425,429"),
		"api key header":    good("WEBHOOK_API_KEY", "k", "WEBHOOK_API_KEY_HEADER", "Authorization"),
		"authorization hdr": good("WEBHOOK_HEADERS", "Authorization: Basic Ym9iOnB3"),
	} {
		if err := loadConfig(t, vars).Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}

	tests := []struct {
		name string
		vars map[string]string
		want []string // substrings of the error
	}{
		{"scheme", good("WEBHOOK_URL", "ftp://hooks.example.com/x?token=q-s3cret"), []string{"WEBHOOK_URL", "http"}},
		{"relative", good("WEBHOOK_URL", "/hooks?token=q-s3cret"), []string{"WEBHOOK_URL"}},
		{"user info", good("WEBHOOK_URL", "https://bob:pw-s3cret@hooks.example.com/x"), []string{"WEBHOOK_URL", "WEBHOOK_API_KEY"}},
		{"unparsable", good("WEBHOOK_URL", "https://hooks.example.com/%zz?token=q-s3cret"), []string{"WEBHOOK_URL"}},
		{"trigger in host", good("WEBHOOK_URL", "https://x{{trigger}}.example.com/?token=q-s3cret"), []string{"WEBHOOK_URL", "{{trigger}}"}},
		{"secret", good("WEBHOOK_SECRET", "whsec_AAECAwQF"), []string{"WEBHOOK_SECRET"}},
		{"format", good("WEBHOOK_FORMAT", "xml"), []string{"WEBHOOK_FORMAT", "cloudevents-structured"}},
		{"triggers", good("WEBHOOK_TRIGGERS", "transport.>"), []string{"WEBHOOK_TRIGGERS"}},
		{"durable", good("WEBHOOK_DURABLE", "crm.hook"), []string{"WEBHOOK_DURABLE"}},
		{"header without colon", good("WEBHOOK_HEADERS", "X-A: 1\nAuthorization Bearer hdr-s3cret"), []string{"WEBHOOK_HEADERS", "entry 2"}},
		{"header CR", good("WEBHOOK_HEADERS", "X-A: hdr-s3cret\rX-Evil: 1"), []string{"WEBHOOK_HEADERS", "X-A"}},
		{"header name", good("WEBHOOK_HEADERS", "X A hdr-s3cret: v"), []string{"WEBHOOK_HEADERS"}},
		{"header empty", good("WEBHOOK_HEADERS", "X-A:"), []string{"WEBHOOK_HEADERS"}},
		{"header reserved", good("WEBHOOK_HEADERS", "Content-Type: text/plain"), []string{"WEBHOOK_HEADERS", "Content-Type"}},
		{"header signature", good("WEBHOOK_HEADERS", "webhook-signature: v1,hdr-s3cret"), []string{"WEBHOOK_HEADERS"}},
		{"header ce", good("WEBHOOK_HEADERS", "ce-source: x"), []string{"WEBHOOK_HEADERS"}},
		{"header api key", good("WEBHOOK_HEADERS", "X-Api-Key: hdr-s3cret", "WEBHOOK_API_KEY", "key-s3cret"), []string{"WEBHOOK_HEADERS", "WEBHOOK_API_KEY"}},
		{"api key CRLF", good("WEBHOOK_API_KEY", "key-s3cret\r\nX-Evil: 1"), []string{"WEBHOOK_API_KEY"}},
		{"api key header", good("WEBHOOK_API_KEY", "key-s3cret", "WEBHOOK_API_KEY_HEADER", "X API"), []string{"WEBHOOK_API_KEY_HEADER"}},
		{"oauth without secret", good("WEBHOOK_OAUTH2_TOKEN_URL", "https://id.example.com/token", "WEBHOOK_OAUTH2_CLIENT_ID", "c"), []string{"WEBHOOK_OAUTH2_CLIENT_SECRET"}},
		{"oauth secret only", good("WEBHOOK_OAUTH2_CLIENT_SECRET", "oauth-s3cret"), []string{"WEBHOOK_OAUTH2_TOKEN_URL", "WEBHOOK_OAUTH2_CLIENT_ID"}},
		{"oauth token url", good("WEBHOOK_OAUTH2_TOKEN_URL", "id.example.com/token?k=q-s3cret", "WEBHOOK_OAUTH2_CLIENT_ID", "c", "WEBHOOK_OAUTH2_CLIENT_SECRET", "oauth-s3cret"), []string{"WEBHOOK_OAUTH2_TOKEN_URL"}},
		{"oauth scopes only", good("WEBHOOK_OAUTH2_SCOPES", "a"), []string{"WEBHOOK_OAUTH2_SCOPES"}},
		{"oauth and authorization header", good("WEBHOOK_HEADERS", "Authorization: Basic hdr-s3cret", "WEBHOOK_OAUTH2_TOKEN_URL", "https://id.example.com/token", "WEBHOOK_OAUTH2_CLIENT_ID", "c", "WEBHOOK_OAUTH2_CLIENT_SECRET", "oauth-s3cret"), []string{"WEBHOOK_HEADERS", "Authorization"}},
		{"timeout", good("WEBHOOK_TIMEOUT", "0s"), []string{"WEBHOOK_TIMEOUT"}},
		{"rate", good("WEBHOOK_RATE_LIMIT", "-1"), []string{"WEBHOOK_RATE_LIMIT"}},
		{"burst", good("WEBHOOK_RATE_LIMIT", "5", "WEBHOOK_RATE_BURST", "0"), []string{"WEBHOOK_RATE_BURST"}},
		{"retryable 5xx", good("WEBHOOK_RETRYABLE_STATUS", "408,500"), []string{"WEBHOOK_RETRYABLE_STATUS", "500"}},
		{"retryable 410", good("WEBHOOK_RETRYABLE_STATUS", "410"), []string{"WEBHOOK_RETRYABLE_STATUS", "410"}},
		{"several", good("WEBHOOK_FORMAT", "xml", "WEBHOOK_TIMEOUT", "0s"), []string{"WEBHOOK_FORMAT", "WEBHOOK_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadConfig(t, tt.vars).Validate()
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			for _, secret := range validateSecrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret %q", err, secret)
				}
			}
		})
	}
}

func TestNewSenderNeedsURL(t *testing.T) {
	_, err := NewSender(loadConfig(t, nil), nil)
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_URL") {
		t.Errorf("NewSender without a URL = %v, want an error naming WEBHOOK_URL", err)
	}
}

func TestConfigLogsNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	c := loadConfig(t, map[string]string{
		"WEBHOOK_URL":                  "https://hooks.example.com/x?token=q-s3cret",
		"WEBHOOK_SECRET":               signSecretA,
		"WEBHOOK_HEADERS":              "X-Auth: hdr-s3cret",
		"WEBHOOK_API_KEY":              "key-s3cret",
		"WEBHOOK_OAUTH2_TOKEN_URL":     "https://id.example.com/token?k=q-s3cret",
		"WEBHOOK_OAUTH2_CLIENT_ID":     "c",
		"WEBHOOK_OAUTH2_CLIENT_SECRET": "oauth-s3cret",
	})
	if _, err := NewSender(c, log); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range append(validateSecrets, signSecretA[6:]) {
		if strings.Contains(out, secret) {
			t.Errorf("log contains the secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"https://hooks.example.com/x", c.DurableName(), "X-Auth"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
