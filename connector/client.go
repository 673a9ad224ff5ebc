package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// Limits and timings of the client.
const (
	// maxBody bounds the body of an answer that is read whole (every
	// route but the listings) and, in a listing, each listed object: a
	// listing is decoded one object at a time, so its size is not bounded.
	maxBody = 64 << 20
	// maxExcerpt bounds the body excerpt in an Error, which ends up in logs.
	maxExcerpt = 256
	// firstBackoff is the wait before the second attempt; it doubles per
	// attempt up to maxBackoff. Short on purpose: the caller's own retry
	// (JetStream redelivery, the next poll) handles longer outages.
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 2 * time.Second
	// minRedact is the shortest API key scrubbed from excerpts; replacing
	// shorter strings would garble ordinary text.
	minRedact = 8
	// userAgent identifies the mesh in the Connector's request log.
	userAgent = "eventmesh"
)

// errAttemptTimeout is the cause of an attempt's context when
// CONNECTOR_TIMEOUT ran out, which tells it from the caller's deadline.
var errAttemptTimeout = errors.New("CONNECTOR_TIMEOUT exceeded")

// Client calls one Connector's REST API. It is safe for concurrent use.
//
// Every request carries the API key, gets CONNECTOR_TIMEOUT per attempt,
// and is tried up to CONNECTOR_ATTEMPTS times with a short backoff while
// the Connector is unavailable (5xx, no connection, timeout); a 4xx is
// never retried. AcceptRelationship is not idempotent, so it is retried
// only after a 5xx answer or when the connection could not be opened,
// never after a request that may have reached the Connector unanswered.
type Client struct {
	base     string // URL and base path, no trailing slash
	key      string
	keyHdr   string
	timeout  time.Duration
	attempts int
	backoff  time.Duration // first backoff; tests shorten it
	maxBody  int64         // maxBody; tests lower it
	http     *http.Client
	log      *slog.Logger
}

// Option changes a Client built by New.
type Option func(*Client)

// WithTransport makes the client send its requests through rt instead of a
// clone of http.DefaultTransport: a proxy, a test's wrapper counting
// attempts.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { c.http.Transport = rt }
}

// New returns a client for the Connector c describes. It validates c and
// refuses an empty CONNECTOR_URL.
func New(c Config, log *slog.Logger, opts ...Option) (*Client, error) {
	if c.URL == "" {
		return nil, errors.New("CONNECTOR_URL is not set: set the Connector's base URL")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	u, err := parseBaseURL(c.URL)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := &Client{
		base:     strings.TrimRight(u.String(), "/") + strings.TrimRight(c.BasePath, "/"),
		key:      c.APIKey,
		keyHdr:   c.APIKeyHeader,
		timeout:  c.Timeout,
		attempts: c.Attempts,
		backoff:  firstBackoff,
		maxBody:  maxBody,
		http: &http.Client{
			Transport: newTransport(),
			// A redirect would carry the API key to wherever it points
			// (net/http drops only Authorization and cookies on a
			// cross-host redirect); the answer is reported instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: log.With("component", "connector"),
	}
	for _, o := range opts {
		o(cl)
	}
	return cl, nil
}

// newTransport returns a copy of net/http's default transport (proxy from
// the environment, dial and TLS handshake timeouts, keep-alive).
func newTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment}
}

// Filter is one query condition of a list route in the Connector's filter
// syntax (openapi.yml, components.schemas TextFilter, IdFilter, DateFilter,
// PartialBooleanFilter): Field is a DTO path such as "createdAt" or
// "recipients.address", Expr "value" (equal), "!value" (not equal), ""
// (exists), "!" (does not exist), ">value", ">=value", "<value",
// "<=value" (dates), "^prefix", "$suffix", "~regex" (text). Several
// plain conditions on one field mean "any of them", several "!"
// conditions "none of them".
type Filter struct {
	// Field is the DTO path filtered on, e.g. "recipients.address".
	Field string
	// Expr is the condition, e.g. ">=2026-03-01T00:00:00.000Z".
	Expr string
}

// Where returns a Filter, e.g. Where("createdAt", ">=2026-03-01T00:00:00.000Z").
func Where(field, expr string) Filter { return Filter{Field: field, Expr: expr} }

// Sync makes the Connector fetch what is new on the Backbone
// (POST /Account/Sync, 204). The Connector fires its events, and so its
// webhooks, while it syncs.
func (c *Client) Sync(ctx context.Context) error {
	_, err := c.do(ctx, request{method: http.MethodPost, route: "/Account/Sync", idempotent: true})
	return err
}

// IdentityInfo returns the Connector's own address and public key
// (GET /Account/IdentityInfo).
func (c *Client) IdentityInfo(ctx context.Context) (IdentityInfo, error) {
	var info IdentityInfo
	err := c.get(ctx, "/Account/IdentityInfo", nil, &info)
	if err == nil && info.Address == "" {
		err = errors.New("connector GET /Account/IdentityInfo: the answer has no address")
	}
	return info, err
}

// Messages lists messages, incoming and own (GET /Messages), matching all
// filters. Filters the spec names: isOwn, createdBy, createdByDevice,
// createdAt, recipients.address, recipients.relationshipId, participant,
// attachments, content.@type, content.subject, content.body,
// content.bodyFormat. It holds the whole listing: EachMessage does not.
func (c *Client) Messages(ctx context.Context, filters ...Filter) ([]Message, error) {
	return collect[Message](ctx, c, "/Messages", filters)
}

// EachMessage calls fn with each message GET /Messages lists, in the
// Connector's order, as it decodes the answer: one message at a time is
// in memory, however long the listing. An error of fn ends the listing
// and is returned as it is. If the connection breaks mid-listing, the
// retry lists from the start again, so fn may see a message twice.
func (c *Client) EachMessage(ctx context.Context, fn func(Message) error, filters ...Filter) error {
	return each(ctx, c, "/Messages", filters, fn, nil)
}

// Message returns one message (GET /Messages/{id}). Note that this route's
// DTO lists attachments as file metadata objects, where the list route and
// events list file ids.
func (c *Client) Message(ctx context.Context, id string) (Message, error) {
	var m Message
	route, err := c.getOne(ctx, "message", "/Messages/", id, &m)
	if err == nil && m.ID == "" {
		err = noID(http.MethodGet, route, "message")
	}
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// Relationships lists relationships (GET /Relationships), matching all
// filters. Filters the spec names: templateId, peer, status.
func (c *Client) Relationships(ctx context.Context, filters ...Filter) ([]Relationship, error) {
	return collect[Relationship](ctx, c, "/Relationships", filters)
}

// EachRelationship calls fn with each relationship GET /Relationships
// lists, one at a time, as EachMessage does.
func (c *Client) EachRelationship(ctx context.Context, fn func(Relationship) error, filters ...Filter) error {
	return each(ctx, c, "/Relationships", filters, fn, nil)
}

// Relationship returns one relationship (GET /Relationships/{id}).
func (c *Client) Relationship(ctx context.Context, id string) (Relationship, error) {
	var r Relationship
	route, err := c.getOne(ctx, "relationship", "/Relationships/", id, &r)
	if err == nil && r.ID == "" {
		err = noID(http.MethodGet, route, "relationship")
	}
	if err != nil {
		return Relationship{}, err
	}
	return r, nil
}

// IncomingRequests lists incoming requests (GET /Requests/Incoming),
// matching all filters. Filters the spec names include id, peer,
// createdAt, status, wasAutomaticallyDecided, source.type,
// source.reference, response.createdAt.
func (c *Client) IncomingRequests(ctx context.Context, filters ...Filter) ([]Request, error) {
	return collect[Request](ctx, c, "/Requests/Incoming", filters)
}

// EachIncomingRequest calls fn with each request GET /Requests/Incoming
// lists, one at a time, as EachMessage does.
func (c *Client) EachIncomingRequest(ctx context.Context, fn func(Request) error, filters ...Filter) error {
	return each(ctx, c, "/Requests/Incoming", filters, fn, nil)
}

// collect gathers the listing of route into a slice, which a retry
// starts afresh.
func collect[T any](ctx context.Context, c *Client, route string, filters []Filter) ([]T, error) {
	var all []T
	err := each(ctx, c, route, filters, func(v T) error { all = append(all, v); return nil }, func() { all = all[:0] })
	if err != nil {
		return nil, err
	}
	return all, nil
}

// AcceptRelationship accepts a pending relationship the peer created
// (PUT /Relationships/{id}/Accept, no request body, 200 with the updated
// relationship). The Connector answers 400 with
// CodeWrongRelationshipStatus when it is not Pending and with
// CodeOperationOnlyAllowedForPeer when it is our own request.
//
// An error for which IsUnavailable holds may come after the Connector
// accepted: read the relationship before accepting again.
func (c *Client) AcceptRelationship(ctx context.Context, id string) (Relationship, error) {
	if err := checkID("relationship", id); err != nil {
		return Relationship{}, err
	}
	route := "/Relationships/" + url.PathEscape(id) + "/Accept"
	body, err := c.do(ctx, request{method: http.MethodPut, route: route})
	if err != nil {
		return Relationship{}, err
	}
	var r Relationship
	if err := decodeResult(body, &r); err != nil {
		return Relationship{}, fmt.Errorf("connector PUT %s: %w", route, err)
	}
	if r.ID == "" {
		return Relationship{}, noID(http.MethodPut, route, "relationship")
	}
	return r, nil
}

// get fetches route and decodes the result into out.
func (c *Client) get(ctx context.Context, route string, filters []Filter, out any) error {
	body, err := c.do(ctx, listRequest(route, filters))
	if err != nil {
		return err
	}
	if err := decodeResult(body, out); err != nil {
		return fmt.Errorf("connector GET %s: %w", route, err)
	}
	return nil
}

// getOne fetches one object by id into out and returns its route, for
// the caller's check that the answer carries an id.
func (c *Client) getOne(ctx context.Context, kind, prefix, id string, out any) (string, error) {
	if err := checkID(kind, id); err != nil {
		return "", err
	}
	route := prefix + url.PathEscape(id)
	return route, c.get(ctx, route, nil, out)
}

// noID is the error of a single-object answer without an id (a "result"
// of null, say): the caller must not go on with an empty object.
func noID(method, route, kind string) error {
	return fmt.Errorf("connector %s %s: the answer has no %s id", method, route, kind)
}

// checkID refuses an id that cannot be one of the Connector's (three
// letters and 17 characters today; up to 64 letters, digits, '_' and '-'
// are let through for ids of future versions). It keeps a stray '/', '?'
// or '..' from turning into another route.
func checkID(kind, id string) error {
	ok := id != "" && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		b := id[i]
		ok = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
	}
	if !ok {
		return fmt.Errorf("connector: invalid %s id %q: want letters and digits, such as %s", kind, truncate(id, 64), exampleID(kind))
	}
	return nil
}

// exampleID shows the shape of an id of kind, for error messages.
func exampleID(kind string) string {
	switch kind {
	case "message":
		return "MSGq8WnJ3kT0aZp4RcVx"
	case "relationship":
		return "RELm4N5o6P7q8R9s0T1u"
	}
	return "REQk5L6m7N8o9P0q1R2s"
}

// request is one logical call, tried up to c.attempts times.
type request struct {
	method string
	route  string // path after the base path, escaped
	query  url.Values
	// idempotent requests are retried after any failure without an
	// answer; the others only when the connection could not be opened.
	idempotent bool
}

// listRequest is the GET of a list route with its filters.
func listRequest(route string, filters []Filter) request {
	var q url.Values
	if len(filters) > 0 {
		q = url.Values{}
		for _, f := range filters {
			q.Add(f.Field, f.Expr)
		}
	}
	return request{method: http.MethodGet, route: route, query: q, idempotent: true}
}

// do runs r with retries and returns the body of its 2xx answer, read
// whole (at most c.maxBody bytes).
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	var body []byte
	err := c.try(ctx, r, func(b *answer) error {
		b.allow(c.maxBody)
		var err error
		if body, err = io.ReadAll(b); errors.Is(err, errTooLarge) {
			return fmt.Errorf("the answer exceeds %s", size(c.maxBody))
		}
		return err
	})
	return body, err
}

// try runs r with retries, handing the body of its 2xx answer to read.
// An error of read is the attempt's, unless it is a callbackError, which
// ends the call unwrapped. Errors name the method and route, never the
// URL's host (in the config) or the key.
func (c *Client) try(ctx context.Context, r request, read func(*answer) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = c.once(ctx, r, read)
		if err == nil {
			return nil
		}
		var cb callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		if attempt >= c.attempts || !retryable(err, r.idempotent) || ctx.Err() != nil {
			if attempt > 1 {
				return fmt.Errorf("connector %s %s (attempt %d of %d): %w%s", r.method, r.route, attempt, c.attempts, err, advice(err))
			}
			return fmt.Errorf("connector %s %s: %w%s", r.method, r.route, err, advice(err))
		}
		wait := c.wait(attempt)
		c.log.Warn("connector request failed, retrying", "method", r.method, "route", r.route,
			"attempt", attempt, "attempts", c.attempts, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("connector %s %s: %w (after attempt %d: %v)", r.method, r.route, ctx.Err(), attempt, err)
		case <-t.C:
		}
	}
}

// advice tells an operator what to check for errors that come from our
// configuration rather than from the Connector.
func advice(err error) string {
	switch {
	case IsAuth(err):
		return " (check CONNECTOR_API_KEY and CONNECTOR_API_KEY_HEADER)"
	case HasCode(err, CodeRouteDoesNotExist):
		return " (check CONNECTOR_BASE_PATH: /api/core/v1 for Connector 7.x, /api/v2 for Connector 3 to 6)"
	}
	return ""
}

// wait is the backoff after attempt: doubling from c.backoff, capped, with
// jitter so that replicas do not retry in step.
func (c *Client) wait(attempt int) time.Duration {
	d := c.backoff << (attempt - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// retryable reports whether another attempt may help and is safe.
func retryable(err error, idempotent bool) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500
	}
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	return idempotent || neverSent(err)
}

// neverSent reports whether a transport error happened while opening the
// connection, so the request cannot have reached the Connector.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// once makes one attempt and hands the body of a 2xx answer to read; it
// returns an *Error for any other answer, or an error wrapping
// ErrUnavailable when there was none (or it broke off). CONNECTOR_TIMEOUT
// bounds the attempt, answer included, but not the time read spends in
// its caller's callbacks (answer.pause).
func (c *Client) once(ctx context.Context, r request, read func(*answer) error) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	clock := &attemptClock{left: c.timeout, resumed: time.Now()}
	clock.timer = time.AfterFunc(c.timeout, func() { cancel(errAttemptTimeout) })
	defer clock.timer.Stop()
	target := c.base + r.route
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(actx, r.method, target, nil)
	if err != nil {
		// The URL passed Validate and the route was escaped, so this is a
		// bug; url's error would quote the URL, so say only what failed.
		return errors.New("cannot build the request from CONNECTOR_URL and CONNECTOR_BASE_PATH")
	}
	req.Header.Set(c.keyHdr, c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	defer func() {
		c.log.Debug("connector request", "method", r.method, "route", r.route, "status", resp.StatusCode,
			"duration", time.Since(start))
	}()
	body := &answer{r: resp.Body, clock: clock}
	if code := resp.StatusCode; code >= 200 && code <= 299 {
		if err = read(body); errors.Is(err, errTooLarge) {
			err = fmt.Errorf("a listed object exceeds %s", size(c.maxBody))
		}
	} else {
		var b []byte
		body.allow(c.maxBody)
		switch b, err = io.ReadAll(body); {
		case errors.Is(err, errTooLarge):
			err = fmt.Errorf("the answer exceeds %s", size(c.maxBody))
		case err == nil:
			err = c.refusal(resp, b)
		}
	}
	if body.err != nil && errors.Is(err, body.err) {
		return c.transportError(ctx, actx, err)
	}
	return err
}

// refusal is the error of a non-2xx answer with body b.
func (c *Client) refusal(resp *http.Response, b []byte) error {
	if code := resp.StatusCode; code >= 300 && code <= 399 {
		return &Error{Status: code, Message: "the Connector redirects (to " + redirectTarget(resp) +
			"), which is not followed: set CONNECTOR_URL and CONNECTOR_BASE_PATH to the final address"}
	}
	return c.statusError(resp.StatusCode, b)
}

// size writes a limit in MiB when it is whole ones, else in bytes.
func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// errTooLarge is the error of an answer reading past its allowance.
var errTooLarge = errors.New("the answer is too large")

// callbackError carries the error of a listing's callback through the
// retries, which must not repeat it, to the caller.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// attemptClock is an attempt's CONNECTOR_TIMEOUT, which stops while a
// listing's callback runs.
type attemptClock struct {
	timer   *time.Timer
	left    time.Duration // time left when the clock last resumed
	resumed time.Time
}

// answer reads the body of an answer. It counts the bytes it may still
// read (allow), so a listing bounds each object rather than the whole,
// and keeps the error of the connection (other than io.EOF), which tells
// a broken answer from one the decoder refuses.
type answer struct {
	r     io.Reader
	clock *attemptClock
	read  int64 // bytes read so far
	limit int64 // read may not pass it
	err   error
}

// allow lets the answer read n more bytes from now on.
func (a *answer) allow(n int64) { a.limit = a.read + n }

func (a *answer) Read(p []byte) (int, error) {
	if a.read >= a.limit {
		return 0, errTooLarge
	}
	if int64(len(p)) > a.limit-a.read {
		p = p[:a.limit-a.read]
	}
	n, err := a.r.Read(p)
	a.read += int64(n)
	if err != nil && err != io.EOF {
		a.err = err
	}
	return n, err
}

// pause runs fn, a caller's callback, with the attempt's clock stopped.
func (a *answer) pause(fn func() error) error {
	c := a.clock
	if !c.timer.Stop() {
		return fn() // ran out already: the next read fails
	}
	c.left -= time.Since(c.resumed)
	err := fn()
	c.resumed = time.Now()
	c.timer.Reset(max(c.left, 0))
	return err
}

// transportError describes an attempt that got no (complete) answer. It
// wraps ErrUnavailable unless the caller gave up (ctx canceled), drops the
// URL that *url.Error quotes, and says when CONNECTOR_TIMEOUT ran out.
func (c *Client) transportError(ctx, actx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%w: %v", ctx.Err(), err)
	}
	if context.Cause(actx) == errAttemptTimeout {
		return fmt.Errorf("%w: no answer within CONNECTOR_TIMEOUT (%s)", ErrUnavailable, c.timeout)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// statusError builds the Error of a non-2xx answer from the Connector's
// error envelope, or from an excerpt of a body that is not one.
func (c *Client) statusError(status int, body []byte) *Error {
	var env struct {
		Error *struct {
			ID      string `json:"id"`
			Code    string `json:"code"`
			Message string `json:"message"`
			Docs    string `json:"docs"`
			Time    string `json:"time"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code != "" {
		e := env.Error
		return &Error{Status: status, ID: e.ID, Code: e.Code, Message: c.redact(e.Message), Docs: e.Docs, Time: e.Time}
	}
	msg := strings.TrimSpace(c.redact(string(body)))
	if msg == "" {
		msg = "(empty body)"
	}
	return &Error{Status: status, Message: truncate(msg, maxExcerpt)}
}

// redact removes the API key from text that came from the other side: a
// proxy may echo request headers. It runs before truncating, so half a
// key cannot survive the cut.
func (c *Client) redact(s string) string {
	if len(c.key) >= minRedact {
		s = strings.ReplaceAll(s, c.key, "[redacted]")
	}
	return s
}

// decodeResult decodes the success envelope {"result": …} into out.
func decodeResult(body []byte, out any) error {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("the answer is not the JSON envelope {\"result\": …}: %w", err)
	}
	if env.Result == nil {
		return errors.New(`the answer has no "result"`)
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return fmt.Errorf("decode the result: %w", err)
	}
	return nil
}

// each lists route matching filters and calls fn with each object of
// the answer {"result": [...]} as it decodes it, one at a time, each at
// most c.maxBody bytes. A "result" of null lists nothing. restart, if not
// nil, runs before each attempt reads its answer.
func each[T any](ctx context.Context, c *Client, route string, filters []Filter, fn func(T) error, restart func()) error {
	return c.try(ctx, listRequest(route, filters), func(a *answer) error {
		if restart != nil {
			restart()
		}
		dec := json.NewDecoder(a)
		a.allow(c.maxBody)
		if err := expectDelim(dec, '{', true); err != nil {
			return err
		}
		found := false
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return envelopeError(err)
			}
			if key != "result" {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return envelopeError(err)
				}
				continue
			}
			found = true
			switch t, err := dec.Token(); {
			case err != nil:
				return fmt.Errorf("decode the result: %w", err)
			case t == nil: // null: nothing listed
				continue
			case t != json.Delim('['):
				return fmt.Errorf("decode the result: want a list, found %v", t)
			}
			for more := true; more; {
				// The allowance covers the separator and the next object;
				// what the decoder holds already counts against it.
				a.allow(c.maxBody - (a.read - dec.InputOffset()))
				if more = dec.More(); !more {
					break
				}
				var v T
				if err := dec.Decode(&v); err != nil {
					return fmt.Errorf("decode the result: %w", err)
				}
				if err := a.pause(func() error { return fn(v) }); err != nil {
					return callbackError{err}
				}
			}
			a.allow(c.maxBody)
			if err := expectDelim(dec, ']', false); err != nil {
				return err
			}
		}
		if !found {
			return errors.New(`the answer has no "result"`)
		}
		return expectDelim(dec, '}', true)
	})
}

// expectDelim reads the next token of a listing and refuses any but d.
func expectDelim(dec *json.Decoder, d json.Delim, envelope bool) error {
	t, err := dec.Token()
	if err == nil && t != d {
		err = fmt.Errorf("want %q, found %v", d, t)
	}
	if err != nil && envelope {
		return envelopeError(err)
	}
	if err != nil {
		return fmt.Errorf("decode the result: %w", err)
	}
	return nil
}

// envelopeError is the error of an answer that is not {"result": …}.
func envelopeError(err error) error {
	if errors.Is(err, errTooLarge) {
		return err
	}
	return fmt.Errorf("the answer is not the JSON envelope {\"result\": …}: %w", err)
}

// redirectTarget returns a 3xx's Location without user info and query,
// which may carry credentials.
func redirectTarget(resp *http.Response) string {
	u, err := resp.Location()
	if err != nil {
		return "nowhere"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// truncate cuts s to at most n bytes at a rune boundary (router.Truncate),
// marks a cut with "…" (after the n bytes), and replaces invalid UTF-8 and
// control characters, so an excerpt is one safe log line.
func truncate(s string, n int) string {
	if cut := router.Truncate(s, n); len(cut) < len(s) {
		s = cut + "…"
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
