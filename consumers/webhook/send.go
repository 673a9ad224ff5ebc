package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
)

// Limits of what is read from a response.
const (
	// maxDrain is how much of a response body is read. Reading the body to
	// its end lets the connection be reused; beyond this a receiver is
	// sending something we do not want, and closing the connection is
	// cheaper than reading on.
	maxDrain = 64 << 10
	// maxExcerpt bounds Result.Body and the excerpt in errors, which end
	// up in logs and dead-letter reasons.
	maxExcerpt = 512
	// maxRetryAfter caps a receiver's Retry-After, so a typo on its side
	// cannot park an event for days.
	maxRetryAfter = time.Hour
	// minRedact is the shortest secret scrubbed from response excerpts:
	// replacing shorter strings would garble ordinary text.
	minRedact = 8
)

// errTimeout is the cause of a request's context when WEBHOOK_TIMEOUT ran
// out, which tells it from the caller's own deadline or cancellation.
var errTimeout = errors.New("WEBHOOK_TIMEOUT exceeded")

// userAgent identifies the mesh to receivers.
const userAgent = "eventmesh-webhook"

// structuredContentType is the Content-Type of a CloudEvent in structured
// content mode (CloudEvents JSON event format).
const structuredContentType = "application/cloudevents+json"

// Result describes one attempt that got an answer.
type Result struct {
	// Status is the receiver's HTTP status code.
	Status int
	// Latency is the time from sending the request to having read the
	// answer.
	Latency time.Duration
	// Body is the start of the answer's body, at most 512 bytes of valid
	// UTF-8, with configured secrets replaced by "[redacted]".
	Body string
	// RetryAfter is the delay a 429 or 503 asked for in Retry-After,
	// capped at one hour; zero when absent.
	RetryAfter time.Duration
}

// StatusError is a receiver's answer other than 2xx. Send returns it
// wrapped in consumers.Retry, consumers.Permanent or consumers.Pause; find
// it with errors.As.
type StatusError struct {
	Status int
	// Body is the excerpt of the answer (see Result.Body).
	Body string
	// Location is where a 3xx pointed, without its query; empty otherwise.
	Location string
	// advice tells an operator what to do, when there is something to do.
	advice string
}

// Error is built without fmt: it is formatted for every failed attempt.
func (e *StatusError) Error() string {
	b := make([]byte, 0, 64+len(e.Body)+len(e.advice))
	b = append(b, "webhook: receiver answered "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(e.Status)...)
	if e.Status >= 300 && e.Status < 400 {
		loc := e.Location
		if loc == "" {
			loc = "(no Location header)"
		}
		b = append(b, " redirecting to "...)
		b = append(b, loc...)
	}
	if e.Body != "" {
		b = append(b, ": "...)
		b = strconv.AppendQuote(b, e.Body)
	}
	if e.advice != "" {
		b = append(b, ": "...)
		b = append(b, e.advice...)
	}
	return string(b)
}

// Sender POSTs events to the configured endpoint, one attempt per call.
// It is safe for concurrent use; the caller bounds the concurrency.
type Sender struct {
	cfg       Config
	log       *slog.Logger
	client    *http.Client
	templated bool          // URL contains router.TriggerPlaceholder
	signer    *Signer       // nil: requests are not signed
	header    http.Header   // static headers and API key, copied into every request
	retryable map[int]bool  // 4xx codes retried rather than dead-lettered
	limiter   *rate.Limiter // nil: no rate limit
	secrets   []string      // scrubbed from response excerpts

	// OAuth 2.0; oauth is nil without it.
	oauth    *clientcredentials.Config
	tokenCtx context.Context // carries the token endpoint's http.Client
	mu       sync.Mutex
	tokens   oauth2.TokenSource // caching; replaced when a receiver rejects its token
	tokenGen uint64             // counts replacements of tokens
}

// NewSender validates c, which must have a URL, and returns a Sender for
// it. log receives warnings about risky settings (nil: discard).
func NewSender(c Config, log *slog.Logger) (*Sender, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.URL == "" {
		return nil, errors.New("WEBHOOK_URL is required for the webhook consumer")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	header, err := c.staticHeaders()
	if err != nil {
		return nil, err // cannot happen after Validate
	}
	s := &Sender{
		cfg:       c,
		log:       log,
		templated: strings.Contains(c.URL, router.TriggerPlaceholder),
		header:    header,
		retryable: make(map[int]bool, len(c.RetryableStatus)),
	}
	for _, v := range header {
		s.secrets = append(s.secrets, v...)
	}
	if c.APIKey != "" {
		s.header.Set(c.APIKeyHeader, c.APIKey)
		s.secrets = append(s.secrets, c.APIKey)
	}
	for _, code := range c.RetryableStatus {
		s.retryable[code] = true
	}
	if c.Secret != "" {
		if s.signer, err = ParseSecrets(c.Secret); err != nil {
			return nil, err
		}
	}
	if c.RateLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(c.RateLimit), c.RateBurst)
	}

	// Many events go to one host at once: keep enough idle connections
	// for the caller's concurrency, or each burst pays for new TCP and TLS
	// handshakes. The client's own Timeout stays unset: each request gets
	// a context deadline, which also covers reading the body.
	tr := newTransport()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 128
	s.client = &http.Client{Transport: tr, CheckRedirect: noRedirects}

	if c.oauth2Enabled() {
		s.oauth = &clientcredentials.Config{
			ClientID:     c.OAuth2ClientID,
			ClientSecret: c.OAuth2ClientSecret,
			TokenURL:     c.OAuth2TokenURL,
			Scopes:       strings.Fields(c.OAuth2Scopes),
		}
		// The token source keeps this context for every fetch, so it
		// cannot be a request's; the client's Timeout bounds a fetch
		// instead.
		s.tokenCtx = context.WithValue(context.Background(), oauth2.HTTPClient,
			&http.Client{Transport: tr, Timeout: c.Timeout, CheckRedirect: noRedirects})
		s.tokens = s.oauth.TokenSource(s.tokenCtx)
		s.secrets = append(s.secrets, c.OAuth2ClientSecret)
	}

	if s.signer == nil {
		log.Warn("WEBHOOK_SECRET is not set: requests are not signed, receivers cannot tell them from forgeries")
	}
	if u, err := url.Parse(c.URL); err == nil && u.Scheme == "http" && (c.APIKey != "" || c.oauth2Enabled() || len(header) > 0) {
		log.Warn("WEBHOOK_URL is plain http: the API key, bearer token or WEBHOOK_HEADERS go over the network unencrypted", "url", endpointOf(c.URL))
	}
	log.Info("webhook sender", "config", c)
	return s, nil
}

// newTransport returns a copy of net/http's default transport (proxy from
// the environment, HTTP/2, dial and TLS handshake timeouts).
func newTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
}

// noRedirects stops the client at a 3xx: following it would silently send
// events (and credentials) somewhere else than configured. The Connector
// does not follow redirects either (maxRedirects 0).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Send makes one POST attempt of e and classifies the outcome: nil for a
// 2xx, else an error built with consumers.Retry (429, 503, other 5xx,
// WEBHOOK_RETRYABLE_STATUS, timeouts, connection and token failures),
// consumers.Permanent (3xx, other 4xx, data that is not JSON) or
// consumers.Pause (410 Gone). The Result is filled when the receiver
// answered.
//
// Send waits for WEBHOOK_RATE_LIMIT first, so a throttled event waits in
// the caller (and so in the stream), never in a queue of ours.
func (s *Sender) Send(ctx context.Context, e router.Event) (Result, error) {
	h := s.requestHeader()
	body, err := s.encode(e, h)
	if err != nil {
		return Result{}, consumers.Permanent(err)
	}
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return Result{}, consumers.Retry(fmt.Errorf("webhook: waiting for WEBHOOK_RATE_LIMIT: %w", err), 0)
		}
	}
	var tokenGen uint64
	var token string
	if s.oauth != nil {
		tok, gen, err := s.token()
		if err != nil {
			return Result{}, consumers.Retry(tokenError(err), 0)
		}
		h.set("Authorization", tok.Type()+" "+tok.AccessToken)
		token, tokenGen = tok.AccessToken, gen
	}

	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, errTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target(e.Namespace), bytes.NewReader(body))
	if err != nil {
		// Validate accepted the URL and a namespace cannot break it, so
		// this is a bug; the wrapped error may quote the URL, so drop it.
		return Result{}, consumers.Permanent(errors.New("webhook: cannot build the request for WEBHOOK_URL"))
	}
	req.Header = h.Header
	// Signed at the attempt, so the timestamp is fresh on every retry and a
	// receiver's replay window can be short.
	now := time.Now()
	sig := ""
	if s.signer != nil {
		sig = s.signer.Sign(e.ID, now, body)
	}
	setDeliveryHeaders(h.set, e.ID, now, sig)

	span := startDeliverSpan(ctx, e, h.Header)
	defer span.End()
	resp, err := s.client.Do(req)
	if err != nil {
		err = consumers.Retry(s.transportError(ctx, err), 0)
		span.SetStatus(codes.Error, err.Error())
		return Result{Latency: time.Since(now)}, err
	}
	// A read error is ignored: the status decides, and for a 2xx the
	// receiver has taken the event whatever happens to the rest.
	var raw []byte
	if resp.Body != http.NoBody { // a 204, or no Content-Length but 0: nothing to read
		raw, _ = io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	}
	resp.Body.Close()
	res := Result{
		Status:  resp.StatusCode,
		Latency: time.Since(now),
		Body:    s.excerpt(raw, token),
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.Status))
	if res.Status >= 400 {
		span.SetStatus(codes.Error, http.StatusText(res.Status)) // not the body, which may echo anything
	}
	return res, s.classify(resp, &res, tokenGen)
}

// tracerName names this package's spans. The tracer is looked up per span,
// not kept: a tracer taken before otel.SetTracerProvider stays bound to the
// first provider ever set.
const tracerName = "github.com/eventmesh/eventmesh/consumers/webhook"

// untraced is the tracer provider in place until one is installed (never,
// in a binary built without -tags otel): its spans do nothing, so none is
// started. Read before main runs, so before any provider is installed.
var untraced = otel.GetTracerProvider()

// startDeliverSpan starts the client span of one attempt, a child of the
// event's traceparent, and puts its context in h's traceparent. Without a
// tracer provider (a binary built without -tags otel, or no
// OTEL_EXPORTER_OTLP_ENDPOINT) the span is a no-op and h keeps the event's
// traceparent byte for byte.
func startDeliverSpan(ctx context.Context, e router.Event, h http.Header) trace.Span {
	if otel.GetTracerProvider() == untraced {
		return trace.SpanFromContext(context.Background()) // does nothing, as a span of untraced would
	}
	if e.Traceparent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{router.HeaderTraceparent: e.Traceparent})
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "deliver "+e.Namespace, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", http.MethodPost), attribute.String("cloudevents.event_id", e.ID)))
	if sc := span.SpanContext(); sc.IsValid() && !sc.IsRemote() {
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
	}
	return span
}

// classify maps an answer to nil or a consumers error, and fills
// res.RetryAfter.
func (s *Sender) classify(resp *http.Response, res *Result, tokenGen uint64) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	se := &StatusError{Status: code, Body: res.Body}
	switch {
	case code >= 300 && code <= 399:
		se.Location = redirectTarget(resp)
		se.advice = "webhooks do not follow redirects; set WEBHOOK_URL to the final address"
		return consumers.Permanent(se)
	case code == http.StatusGone:
		se.advice = "the endpoint was removed; fix WEBHOOK_URL and run `eventmesh consumer resume " + s.cfg.DurableName() + "`"
		return consumers.Pause(se)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return consumers.Retry(se, res.RetryAfter)
	case code == http.StatusUnauthorized && s.oauth != nil:
		// A token can be revoked before it expires, and one without
		// expires_in is cached for ever: fetch a new one, and let this
		// event try again with it rather than dead-lettering it.
		s.dropToken(tokenGen)
		se.advice = "the bearer token was rejected; a new one is fetched for the next attempt"
		return consumers.Retry(se, 0)
	case code >= 400 && code <= 499:
		if s.retryable[code] {
			return consumers.Retry(se, 0)
		}
		se.advice = "not retried; list the status in WEBHOOK_RETRYABLE_STATUS to retry it"
		return consumers.Permanent(se)
	default:
		return consumers.Retry(se, 0)
	}
}

// transportError describes a request that got no answer, without the URL
// (*url.Error quotes it, query included).
func (s *Sender) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if context.Cause(ctx) == errTimeout {
		return fmt.Errorf("webhook: no answer within WEBHOOK_TIMEOUT (%s): %w", s.cfg.Timeout, err)
	}
	return fmt.Errorf("webhook: request to %s failed: %w", endpointHost(s.cfg.URL), err)
}

// endpointHost returns the scheme and host of a URL, for messages that
// should name the receiver but not its path or query.
func endpointHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "WEBHOOK_URL"
	}
	return u.Scheme + "://" + u.Host
}

// tokenError describes a failed token fetch without the token endpoint's
// full answer or URL.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := "webhook: WEBHOOK_OAUTH2_TOKEN_URL refused a token"
		if re.Response != nil {
			msg += ": " + re.Response.Status
		}
		if re.ErrorCode != "" {
			msg += ": " + re.ErrorCode
			if re.ErrorDescription != "" {
				msg += " (" + re.ErrorDescription + ")"
			}
		}
		return errors.New(msg)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("webhook: fetching a token from WEBHOOK_OAUTH2_TOKEN_URL: %w", err)
}

// token returns the cached bearer token (fetching one if needed) and the
// generation of the source it came from.
func (s *Sender) token() (*oauth2.Token, uint64, error) {
	s.mu.Lock()
	ts, gen := s.tokens, s.tokenGen
	s.mu.Unlock()
	tok, err := ts.Token()
	return tok, gen, err
}

// dropToken discards the cached token of generation gen. Requests that
// were rejected together all report the same generation, so the token is
// fetched anew once, not once per rejected request.
func (s *Sender) dropToken(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen == s.tokenGen {
		s.tokens = s.oauth.TokenSource(s.tokenCtx)
		s.tokenGen++
	}
}

// target returns the request URL for a namespace.
func (s *Sender) target(namespace string) string {
	if !s.templated {
		return s.cfg.URL
	}
	// Namespaces are validated subject tokens, which need no escaping in a
	// path or a query; escaping anyway keeps a bad one from reshaping the URL.
	return strings.ReplaceAll(s.cfg.URL, router.TriggerPlaceholder, url.PathEscape(namespace))
}

// encode returns the body of e in the configured format and sets the
// headers that go with it on h.
func (s *Sender) encode(e router.Event, h requestHeader) ([]byte, error) {
	hasData := len(e.Data) > 0
	if hasData && s.cfg.Format != FormatCloudEvents && !router.Valid(e.Data) {
		// Embedded in a JSON document, bad data would make the whole body
		// invalid; no retry repairs it.
		return nil, fmt.Errorf("webhook: event %s: data is not valid JSON", e.ID)
	}
	h.set("User-Agent", userAgent)
	if e.CorrelationID != "" {
		h.set(canonicalCorrelationID, e.CorrelationID)
	}
	if e.Traceparent != "" {
		h.set(canonicalTraceparent, e.Traceparent)
	}
	source := e.Source
	if source == "" {
		// ce-source is required by CloudEvents; events from the producer
		// always have one.
		source = router.DefaultSource
	}

	switch s.cfg.Format {
	case FormatCloudEvents:
		// HTTP binary mode: Content-Type carries datacontenttype, and the
		// binding forbids a ce-datacontenttype header. Without data there
		// is no body to describe.
		if hasData {
			h.set("Content-Type", router.DataContentType)
		}
		h.set(canonicalSpecVersion, router.SpecVersion)
		h.set(canonicalCEID, e.ID)
		h.set(canonicalType, e.Namespace)
		h.set(canonicalSource, source)
		if !e.Time.IsZero() {
			h.set(canonicalTime, e.Time.UTC().Format(router.TimeFormat))
		}
		return e.Data, nil

	case FormatCloudEventsStructured:
		h.set("Content-Type", structuredContentType)
		b := make([]byte, 0, len(e.Data)+256)
		b = append(b, `{"specversion":`...)
		b = router.AppendJSONString(b, router.SpecVersion)
		b = append(b, `,"id":`...)
		b = router.AppendJSONString(b, e.ID)
		b = append(b, `,"source":`...)
		b = router.AppendJSONString(b, source)
		b = append(b, `,"type":`...)
		b = router.AppendJSONString(b, e.Namespace)
		if !e.Time.IsZero() {
			b = append(b, `,"time":`...)
			b = router.AppendJSONString(b, e.Time.UTC().Format(router.TimeFormat))
		}
		b = append(b, `,"datacontenttype":`...)
		b = router.AppendJSONString(b, router.DataContentType)
		if hasData {
			b = append(b, `,"data":`...)
			b = append(b, e.Data...)
		}
		return append(b, '}'), nil

	default: // FormatEnmeshed
		// Built by hand rather than with json.Marshal, which would compact
		// the data and escape <, > and &: the Connector's bytes go out as
		// they came in.
		h.set("Content-Type", router.DataContentType)
		b := make([]byte, 0, len(e.Data)+len(e.Namespace)+24)
		b = append(b, `{"trigger":`...)
		b = router.AppendJSONString(b, e.Namespace)
		if hasData {
			b = append(b, `,"data":`...)
			b = append(b, e.Data...)
		}
		return append(b, '}'), nil
	}
}

// requestHeader is a request's header under construction: values are set
// under names already in canonical form (no canonicalising per request)
// and share one backing array.
type requestHeader struct {
	http.Header
	vals *[]string
}

// Canonical forms of the names of the headers set on every request.
var (
	canonicalCorrelationID = http.CanonicalHeaderKey(router.HeaderCorrelationID)
	canonicalTraceparent   = http.CanonicalHeaderKey(router.HeaderTraceparent)
	canonicalSpecVersion   = http.CanonicalHeaderKey(router.HeaderSpecVersion)
	canonicalCEID          = http.CanonicalHeaderKey(router.HeaderID)
	canonicalType          = http.CanonicalHeaderKey(router.HeaderType)
	canonicalSource        = http.CanonicalHeaderKey(router.HeaderSource)
	canonicalTime          = http.CanonicalHeaderKey(router.HeaderTime)
)

// requestHeader returns a new request header holding the static headers
// (WEBHOOK_HEADERS, the API key). Their values are shared with s.header,
// each capped at its length, so no request can change another's.
func (s *Sender) requestHeader() requestHeader {
	h := make(http.Header, len(s.header)+12)
	for k, v := range s.header {
		h[k] = v[:len(v):len(v)]
	}
	vals := make([]string, 0, 12)
	return requestHeader{Header: h, vals: &vals}
}

// set sets name, which must be in canonical form, to the one value v,
// replacing what it had.
func (h requestHeader) set(name, v string) {
	*h.vals = append(*h.vals, v)
	n := len(*h.vals)
	h.Header[name] = (*h.vals)[n-1 : n : n]
}

// excerpt returns the start of a response body for logs: the configured
// secrets and the bearer token sent removed (a receiver may echo the
// request), cut to maxExcerpt bytes at a rune boundary, invalid UTF-8
// replaced. Secrets are removed before cutting, so a secret straddling the
// cut cannot leak its first half.
func (s *Sender) excerpt(body []byte, token string) string {
	text := string(body)
	for _, secret := range append([]string{token}, s.secrets...) {
		if len(secret) >= minRedact {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return strings.ToValidUTF8(router.Truncate(text, maxExcerpt), "\uFFFD")
}

// redirectTarget returns a 3xx's Location, resolved against the request,
// without user info and query, which may carry credentials.
func redirectTarget(resp *http.Response) string {
	u, err := resp.Location()
	if err != nil {
		return ""
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "", false
		return u.String() + "?…"
	}
	return u.String()
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP-date.
// A missing, unreadable or past value gives zero (retry by the schedule);
// the result is capped at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs >= uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// Handler returns a consumers.Handler that sends each delivered event.
// It does not filter by WEBHOOK_TRIGGERS: the durable's subject filter
// does, and a replay aimed at this consumer is sent whatever its trigger.
func (s *Sender) Handler() consumers.Handler {
	return consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error {
		res, err := s.Send(ctx, d.Event)
		if err == nil {
			s.log.LogAttrs(ctx, slog.LevelDebug, "webhook delivered",
				slog.String("event_id", d.Event.ID),
				slog.String("subject", d.Subject),
				slog.Uint64("stream_seq", d.StreamSeq),
				slog.Int("num_delivered", d.Attempt),
				slog.Int("status", res.Status),
				slog.Duration("latency", res.Latency))
		}
		return err
	})
}
