package producer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
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

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
)

// IngestConfig configures the Connector webhook ingest.
type IngestConfig struct {
	Addr         string           `env:"INGEST_ADDR" envDefault:"127.0.0.1:8080" desc:"address of the ingest endpoint, /healthz, /readyz and /metrics"`
	APIKey       string           `env:"INGEST_API_KEY" secret:"true" desc:"API key the Connector's webhooks must send (required when INGEST_ADDR is not loopback); several keys separated by spaces are all accepted, for rotation"`
	APIKeyHeader string           `env:"INGEST_API_KEY_HEADER" envDefault:"X-API-KEY" desc:"header that carries INGEST_API_KEY"`
	MaxBody      streams.ByteSize `env:"INGEST_MAX_BODY" desc:"largest request body (default and maximum: the NATS server's max payload minus 8KiB for headers)"`
	ConnectorID  string           `env:"CONNECTOR_ID" envDefault:"enmeshed-connector" desc:"ce-source of events from POST /events (a URI-reference)"`
	TLSCert      string           `env:"INGEST_TLS_CERT" desc:"certificate (PEM) to serve ingest over HTTPS; re-read when it changes"`
	TLSKey       string           `env:"INGEST_TLS_KEY" desc:"its private key (PEM)"`
}

// HeaderReserve is the room INGEST_MAX_BODY leaves below the server's max
// payload for the headers of an event (their values are bounded: trigger
// and source 256 bytes each, correlation id 256, traceparent 55).
const HeaderReserve = 8 << 10

// Validate checks the settings that do not depend on the server.
func (c IngestConfig) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("INGEST_ADDR %q: %w", c.Addr, err)
	}
	if c.APIKey != "" && len(c.Keys()) == 0 {
		// Blank-looking (e.g. "${KEY} " with KEY unset): no key at all
		// would be checked, while the operator believes one is.
		return errors.New("INGEST_API_KEY holds only whitespace: set a key, or unset it (only on a loopback INGEST_ADDR)")
	}
	if len(c.Keys()) == 0 && !router.LoopbackHost(host) {
		return fmt.Errorf("INGEST_ADDR %s is reachable from other hosts but INGEST_API_KEY is not set: set a key (or INGEST_API_KEY_FILE), or listen on 127.0.0.1", c.Addr)
	}
	if c.APIKeyHeader == "" || strings.ContainsAny(c.APIKeyHeader, " :\t\r\n") {
		return fmt.Errorf("INGEST_API_KEY_HEADER %q is not a header name", c.APIKeyHeader)
	}
	if err := ValidateSource(c.ConnectorID); err != nil {
		return fmt.Errorf("CONNECTOR_ID: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("INGEST_TLS_CERT and INGEST_TLS_KEY must be set together")
	}
	if c.MaxBody < 0 {
		return fmt.Errorf("INGEST_MAX_BODY %s is negative", c.MaxBody)
	}
	return nil
}

// BodyLimit returns the body limit for a server whose max payload is
// maxPayload: INGEST_MAX_BODY, or the largest body whose event is sure to
// fit. A larger INGEST_MAX_BODY would let a body pass HTTP and fail at
// publish, so it is an error.
func (c IngestConfig) BodyLimit(maxPayload int64) (int64, error) {
	limit := maxPayload - HeaderReserve
	if limit < 1024 {
		return 0, fmt.Errorf("the NATS server's max payload (%d bytes) is too small for events", maxPayload)
	}
	if c.MaxBody == 0 {
		return limit, nil
	}
	if int64(c.MaxBody) > limit {
		return 0, fmt.Errorf("INGEST_MAX_BODY %s exceeds the NATS server's max payload %s minus %s for headers: lower it to at most %d, or raise the server's max_payload (NATS_MAX_PAYLOAD when embedded)",
			c.MaxBody, streams.ByteSize(maxPayload), streams.ByteSize(HeaderReserve), limit)
	}
	return int64(c.MaxBody), nil
}

// ValidateSource checks a ce-source: a non-empty URI-reference of printable
// ASCII without white space, at most 256 bytes.
func ValidateSource(s string) error {
	if s == "" || len(s) > 256 {
		return fmt.Errorf("%q: want 1 to 256 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("%q: byte %d is not printable ASCII", s, i)
		}
	}
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("%q is not a URI-reference: %w", s, err)
	}
	return nil
}

// Ingest is the HTTP API the Connector's webhooks module posts to.
type Ingest struct {
	pub     *Publisher
	source  string
	keys    [][]byte // any of them is accepted (several during a rotation)
	keyHdr  string
	maxBody int64
	now     func() time.Time
	log     *slog.Logger
	metrics *Metrics
}

// Keys returns the accepted API keys: INGEST_API_KEY split at whitespace
// (two keys while one is rotated). None means no authentication.
func (c IngestConfig) Keys() []string { return strings.Fields(c.APIKey) }

// NewIngest returns the ingest API. maxBody comes from IngestConfig.BodyLimit.
func NewIngest(pub *Publisher, c IngestConfig, maxBody int64, m *Metrics, log *slog.Logger) *Ingest {
	var keys [][]byte
	for _, k := range c.Keys() {
		keys = append(keys, []byte(k))
	}
	return &Ingest{pub: pub, source: c.ConnectorID, keys: keys, keyHdr: c.APIKeyHeader,
		maxBody: maxBody, now: time.Now, log: log, metrics: m}
}

// Register adds the ingest routes to mux.
func (in *Ingest) Register(mux *http.ServeMux) {
	mux.HandleFunc("/events", in.serve)
	mux.HandleFunc("/events/{trigger}", in.serve)
	mux.HandleFunc("/connectors/{connector}/events", in.serve)
	mux.HandleFunc("/connectors/{connector}/events/{trigger}", in.serve)
}

// Error codes of the ingest API ({"error": {"code", "message"}}).
const (
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidBody      = "invalid_body"
	CodeInvalidTrigger   = "invalid_trigger"
	CodeTriggerMismatch  = "trigger_mismatch"
	CodeInvalidConnector = "invalid_connector"
	CodeUnauthorized     = "unauthorized"
	CodeTooLarge         = "body_too_large"
	CodeMediaType        = "unsupported_media_type"
	CodeMethod           = "method_not_allowed"
	CodeUnavailable      = "unavailable"
	CodeNotFound         = "not_found"
)

// apiError is an ingest error with its HTTP status.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badRequest(code, format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, a...)}
}

// item is one event as the Connector posts it.
type item struct {
	Trigger *string         `json:"trigger"`
	Data    json.RawMessage `json:"data"`
}

func (in *Ingest) serve(w http.ResponseWriter, r *http.Request) {
	r, span := startIngestSpan(r)
	status := in.handle(w, r)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
	in.metrics.request(status)
}

// tracerName names this package's spans. The tracer is looked up per span,
// not kept: a tracer taken before otel.SetTracerProvider stays bound to the
// first provider ever set.
const tracerName = "github.com/eventmesh/eventmesh/producer"

// startIngestSpan starts the server span of a request, a child of its
// traceparent. Without a tracer provider (a binary built without -tags
// otel, or no OTEL_EXPORTER_OTLP_ENDPOINT) the span is a no-op that only
// carries the incoming trace context.
func startIngestSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx := r.Context()
	if tp := r.Header.Get("Traceparent"); tp != "" && ValidTraceparent(tp) {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	name := "ingest"
	if t := r.PathValue("trigger"); t != "" && router.ValidateTrigger(t) == nil {
		name += " " + t
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	if sc := span.SpanContext(); !sc.IsValid() || sc.IsRemote() {
		return r, span // no span of ours: keep the request as it is
	}
	return r.WithContext(ctx), span
}

// spanTraceparent returns the traceparent the request's events carry: the
// ingest span's, so the events' spans are its children, or tp unchanged
// when no span was started (a no-op span holds the remote parent's context:
// the incoming traceparent then travels byte for byte).
func spanTraceparent(ctx context.Context, tp string) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || sc.IsRemote() {
		return tp
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

func (in *Ingest) handle(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeError(w, &apiError{http.StatusMethodNotAllowed, CodeMethod, "use POST"})
	}
	if len(in.keys) > 0 && !in.authorized(r.Header.Get(in.keyHdr)) {
		return writeError(w, &apiError{http.StatusUnauthorized, CodeUnauthorized, "missing or wrong API key in header " + in.keyHdr})
	}
	if err := checkMediaType(r.Header.Get("Content-Type")); err != nil {
		return writeError(w, err)
	}
	source := in.source
	if c := r.PathValue("connector"); c != "" || strings.HasPrefix(r.URL.Path, "/connectors/") {
		if err := router.ValidateToken(c); err != nil {
			return writeError(w, badRequest(CodeInvalidConnector, "connector in the URL: %v", err))
		}
		source = c
	}
	urlTrigger := r.PathValue("trigger")
	if urlTrigger != "" {
		if err := router.ValidateTrigger(urlTrigger); err != nil {
			return writeError(w, badRequest(CodeInvalidTrigger, "trigger in the URL: %v", err))
		}
	}
	if r.ContentLength > in.maxBody {
		return writeError(w, tooLarge(in.maxBody))
	}
	// A fresh buffer per request, not a pooled one: the events' data are
	// slices of it, and nats.go may re-send a message after a timed-out
	// attempt returned.
	buf := bytes.NewBuffer(make([]byte, 0, max(min(r.ContentLength, in.maxBody), 512)+1))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, in.maxBody)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return writeError(w, tooLarge(in.maxBody))
		}
		return writeError(w, badRequest(CodeInvalidBody, "reading the body: %v", err))
	}
	body, aerr := checkBody(buf.Bytes())
	if aerr != nil {
		return writeError(w, aerr)
	}
	meta := requestMeta{source: source, urlTrigger: urlTrigger, time: in.now()}
	meta.correlationID, meta.traceparent = in.traceHeaders(r)
	meta.traceparent = spanTraceparent(r.Context(), meta.traceparent)
	if len(body) > 0 && body[0] == '[' {
		return in.bulk(w, r.Context(), body, meta)
	}
	e, aerr := parseItem(body, meta)
	if aerr != nil {
		return writeError(w, aerr)
	}
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetName("ingest " + e.Namespace)
		span.SetAttributes(attribute.String("cloudevents.event_id", e.ID))
	}
	res, err := in.pub.Publish(r.Context(), e)
	in.metrics.event(e.Namespace, res, err)
	if err != nil {
		in.log.Error("event not stored; answered 503", "event_id", e.ID, "subject", in.pub.Subjects().Event(e.Namespace), "err", err)
		return writeError(w, &apiError{http.StatusServiceUnavailable, CodeUnavailable, "the event was not stored, retry later: " + err.Error()})
	}
	b := appendResult(make([]byte, 0, 96), e.ID, res)
	return writeJSON(w, http.StatusOK, b)
}

// authorized compares got with every key in constant time (the loop does
// not stop early, so timing tells nothing about which key matched).
func (in *Ingest) authorized(got string) bool {
	ok := 0
	for _, k := range in.keys {
		ok |= subtle.ConstantTimeCompare([]byte(got), k)
	}
	return ok == 1
}

// requestMeta is what one request contributes to each of its events.
type requestMeta struct {
	source, urlTrigger         string
	correlationID, traceparent string
	time                       time.Time
}

// parseItem turns one JSON object into an event, or a 400. b is valid
// JSON (checked once for the whole body), so a light scan finds its members;
// meta.urlTrigger is empty or a valid trigger (checked with the URL).
func parseItem(b []byte, meta requestMeta) (router.Event, *apiError) {
	var (
		trigger, data []byte
		bad           *apiError
	)
	err := router.Members(b, func(key, value []byte) bool {
		switch {
		case router.KeyIs(key, "trigger"):
			if trigger != nil {
				bad = badRequest(CodeInvalidBody, `"trigger" appears twice`)
			}
			trigger = value
		case router.KeyIs(key, "data"):
			if data != nil {
				bad = badRequest(CodeInvalidBody, `"data" appears twice`)
			}
			data = value
		default:
			// A misspelt "data" must not publish an event without its data.
			bad = badRequest(CodeInvalidBody, `unknown field %q: an event has only "trigger" and "data"`, key)
		}
		return bad == nil
	})
	switch {
	case err != nil:
		return router.Event{}, badRequest(CodeInvalidJSON, `each event must be a JSON object {"trigger": "...", "data": {...}}`)
	case bad != nil:
		return router.Event{}, bad
	}
	namespace := meta.urlTrigger
	if trigger != nil {
		t, ok := router.StringValue(trigger)
		if !ok {
			return router.Event{}, badRequest(CodeInvalidTrigger, `"trigger" must be a string`)
		}
		if meta.urlTrigger != "" && t != meta.urlTrigger {
			return router.Event{}, badRequest(CodeTriggerMismatch, "the body's trigger %q differs from the URL's %q", t, meta.urlTrigger)
		}
		namespace = t
	} else if namespace == "" {
		return router.Event{}, badRequest(CodeInvalidTrigger, `the body has no "trigger"`)
	}
	if meta.urlTrigger == "" { // a URL trigger was checked with the URL, and namespace equals it
		if err := router.ValidateTrigger(namespace); err != nil {
			return router.Event{}, badRequest(CodeInvalidTrigger, "%v", err)
		}
	}
	// data is nil when the body had no data key (runtime.*): the event then
	// has an empty body, and the webhook format omits "data" again.
	id, err := router.EventID(meta.source, namespace, data)
	if err != nil {
		return router.Event{}, badRequest(CodeInvalidJSON, "%v", err)
	}
	return router.Event{
		ID: id, Namespace: namespace, Source: meta.source, Time: meta.time, Origin: router.OriginWebhook,
		Data: data, CorrelationID: meta.correlationID, Traceparent: meta.traceparent,
	}, nil
}

// bulkResult is one entry of a bulk reply.
type bulkResult struct {
	ID        string    `json:"id,omitempty"`
	Status    string    `json:"status"`
	StreamSeq uint64    `json:"stream_seq,omitempty"`
	Error     *errorObj `json:"error,omitempty"`
}

type errorObj struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// maxBulkInFlight bounds the publishes one bulk request has in flight.
const maxBulkInFlight = 256

func (in *Ingest) bulk(w http.ResponseWriter, ctx context.Context, body []byte, meta requestMeta) int {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return writeError(w, badRequest(CodeInvalidJSON, "%v", err))
	}
	if len(raw) == 0 {
		return writeError(w, badRequest(CodeInvalidBody, "the array holds no events"))
	}
	results := make([]bulkResult, len(raw))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxBulkInFlight)
	for i, b := range raw {
		e, aerr := parseItem(b, meta)
		if aerr != nil {
			results[i] = bulkResult{Status: "error", Error: &errorObj{aerr.code, aerr.message}}
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := in.pub.Publish(ctx, e)
			in.metrics.event(e.Namespace, res, err)
			switch {
			case err != nil:
				in.log.Error("event not stored", "event_id", e.ID, "err", err)
				results[i] = bulkResult{ID: e.ID, Status: "error", Error: &errorObj{CodeUnavailable, err.Error()}}
			case res.Duplicate:
				results[i] = bulkResult{ID: e.ID, Status: "duplicate", StreamSeq: res.Seq}
			default:
				results[i] = bulkResult{ID: e.ID, Status: "published", StreamSeq: res.Seq}
			}
		}()
	}
	wg.Wait()
	// 207 only for items the sender must fix; if any item was not stored
	// for want of JetStream, the whole array gets 503 so that a sender
	// that takes every 2xx as delivered retries it (stored items come
	// back "duplicate").
	status := http.StatusOK
	for _, r := range results {
		if r.Error == nil {
			continue
		}
		if r.Error.Code == CodeUnavailable {
			status = http.StatusServiceUnavailable
			break
		}
		status = http.StatusMultiStatus
	}
	b, _ := json.Marshal(struct {
		Results []bulkResult `json:"results"`
	}{results})
	return writeJSON(w, status, b)
}

// checkBody trims a request body and checks it is JSON, as every item
// parser relies on.
func checkBody(raw []byte) ([]byte, *apiError) {
	body := bytes.TrimSpace(raw)
	if err := router.CheckJSON(body); err != nil {
		return nil, badRequest(CodeInvalidJSON, "malformed JSON: %v", err)
	}
	return body, nil
}

// traceHeaders returns x-correlation-id and traceparent when they are well
// formed. A malformed one is dropped with a warning rather than refusing
// the event: the Connector never retries, so a refusal would lose it.
func (in *Ingest) traceHeaders(r *http.Request) (corr, tp string) {
	corr = r.Header.Get("X-Correlation-Id")
	if corr != "" && !printable(corr, 256) {
		in.log.Warn("dropping malformed x-correlation-id header (want 1-256 printable ASCII bytes)")
		corr = ""
	}
	tp = r.Header.Get("Traceparent")
	if tp != "" && !ValidTraceparent(tp) {
		in.log.Warn("dropping malformed traceparent header (W3C Trace Context)")
		tp = ""
	}
	return corr, tp
}

func printable(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidTraceparent reports whether s is a W3C traceparent:
// version "-" trace-id "-" parent-id "-" flags, lower-case hex, with the
// all-zero ids and version ff invalid.
func ValidTraceparent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	ver, trace, parent, flags := s[:2], s[3:35], s[36:52], s[53:55]
	if ver == "ff" || (ver == "00" && len(s) != 55) || (len(s) > 55 && s[55] != '-') {
		return false
	}
	for _, part := range []string{ver, trace, parent, flags} {
		for i := 0; i < len(part); i++ {
			if !(part[i] >= '0' && part[i] <= '9' || part[i] >= 'a' && part[i] <= 'f') {
				return false
			}
		}
	}
	return trace != zeroTraceID && parent != zeroParentID
}

// The all-zero ids, which W3C Trace Context rules out.
const (
	zeroTraceID  = "00000000000000000000000000000000"
	zeroParentID = "0000000000000000"
)

func checkMediaType(ct string) *apiError {
	if ct == "" {
		return &apiError{http.StatusUnsupportedMediaType, CodeMediaType, "Content-Type is missing: send application/json"}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return &apiError{http.StatusUnsupportedMediaType, CodeMediaType, fmt.Sprintf("Content-Type %q is not supported: send application/json", ct)}
	}
	return nil
}

func tooLarge(limit int64) *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body exceeds %d bytes (INGEST_MAX_BODY)", limit)}
}

// appendResult writes the reply to a single event without reflection: this
// is the hot path.
func appendResult(b []byte, id string, res Result) []byte {
	status := "published"
	if res.Duplicate {
		status = "duplicate"
	}
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	b = append(b, `","stream_seq":`...)
	b = strconv.AppendUint(b, res.Seq, 10)
	return append(b, '}')
}

func writeJSON(w http.ResponseWriter, status int, body []byte) int {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
	return status
}

// WriteError writes {"error": {"code", "message"}} with status.
func WriteError(w http.ResponseWriter, status int, code, message string) int {
	b, _ := json.Marshal(struct {
		Error errorObj `json:"error"`
	}{errorObj{code, message}})
	return writeJSON(w, status, b)
}

func writeError(w http.ResponseWriter, e *apiError) int {
	return WriteError(w, e.status, e.code, e.message)
}
