// Package webhook is the webhook consumer: it POSTs each event to one HTTP
// endpoint in the enmeshed Connector's own webhook format or as a
// CloudEvent, signed the Standard Webhooks way, and tells the consumer
// runtime whether a failure is worth a retry.
package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"golang.org/x/net/http/httpguts"
)

// Format is the shape of the request body (WEBHOOK_FORMAT).
type Format string

// The body formats.
const (
	// FormatEnmeshed is what the Connector's webhooks module sends:
	// {"trigger":"<namespace>","data":<data>}, without "data" when the event
	// has none. A receiver written for the Connector works unchanged.
	FormatEnmeshed Format = "enmeshed"
	// FormatCloudEvents is the CloudEvents HTTP binding in binary content
	// mode: the body is the event's data, its attributes are ce-* headers.
	FormatCloudEvents Format = "cloudevents"
	// FormatCloudEventsStructured is the CloudEvents HTTP binding in
	// structured content mode: one application/cloudevents+json document.
	FormatCloudEventsStructured Format = "cloudevents-structured"
)

// Config is the webhook consumer's configuration, parsed from the
// environment by the binary's main. Call Validate before use.
type Config struct {
	// URL is the endpoint every event is POSTed to: an absolute http or
	// https URL, in which {{trigger}} (path or query only) is replaced by
	// the event's namespace. No default; the consumer runs only when set.
	// It must not carry user info (credentials go in APIKey or Headers),
	// and its query is never logged, since tokens often hide there.
	URL string `env:"WEBHOOK_URL" desc:"endpoint events are POSTed to (http or https; {{trigger}} is replaced by the event's namespace; no user info, use WEBHOOK_API_KEY or WEBHOOK_HEADERS); the webhook consumer runs only when set"`

	// Secret holds one or more Standard Webhooks secrets (whsec_<base64>),
	// separated by white space; each adds a signature, for rotation.
	// Default: none, and requests go out unsigned (NewSender warns).
	Secret string `env:"WEBHOOK_SECRET" secret:"true" desc:"one or more whsec_… secrets separated by spaces; each signs every request (Standard Webhooks); empty: requests are not signed"`

	// Format is the body format. Default: enmeshed.
	Format Format `env:"WEBHOOK_FORMAT" envDefault:"enmeshed" desc:"body format: enmeshed (the Connector's {\"trigger\",\"data\"}), cloudevents (binary mode) or cloudevents-structured"`

	// Triggers selects the events sent, in the Connector's trigger syntax
	// (router.ParsePatterns), separated by commas or spaces. Default: **.
	Triggers string `env:"WEBHOOK_TRIGGERS" envDefault:"**" desc:"events to send, Connector trigger patterns separated by commas (transport.messageReceived, transport.*, **)"`

	// Durable is the durable consumer name. Default: derived from URL,
	// see DurableName.
	Durable string `env:"WEBHOOK_DURABLE" desc:"durable consumer name ([A-Za-z0-9_-]); default webhook-<8 hex digits of SHA-256 of the URL's scheme, host and path>"`

	// Headers are extra static request headers: "Name: value" entries
	// separated by newlines or ';'. Default: none. Treated as a secret,
	// since values are often credentials; names may not be ones the sender
	// sets itself (Content-Type, ce-*, webhook-*, …).
	Headers string `env:"WEBHOOK_HEADERS" secret:"true" desc:"extra request headers, 'Name: value' entries separated by newlines or ';'"`

	// APIKey is sent in the APIKeyHeader header. Default: none.
	APIKey string `env:"WEBHOOK_API_KEY" secret:"true" desc:"API key sent to the receiver in WEBHOOK_API_KEY_HEADER"`
	// APIKeyHeader names the header carrying APIKey. Default: X-API-KEY.
	APIKeyHeader string `env:"WEBHOOK_API_KEY_HEADER" envDefault:"X-API-KEY" desc:"header that carries WEBHOOK_API_KEY"`

	// OAuth2TokenURL is the token endpoint of an OAuth 2.0 client
	// credentials grant; with it the sender sends "Authorization: Bearer"
	// with a cached token. Set all of URL, client id and client secret,
	// or none. Default: none.
	OAuth2TokenURL string `env:"WEBHOOK_OAUTH2_TOKEN_URL" desc:"OAuth 2.0 token endpoint (client credentials grant); requests then carry a bearer token"`
	// OAuth2ClientID is the OAuth 2.0 client id. Default: none.
	OAuth2ClientID string `env:"WEBHOOK_OAUTH2_CLIENT_ID" desc:"OAuth 2.0 client id"`
	// OAuth2ClientSecret is the OAuth 2.0 client secret. Default: none.
	OAuth2ClientSecret string `env:"WEBHOOK_OAUTH2_CLIENT_SECRET" secret:"true" desc:"OAuth 2.0 client secret"`
	// OAuth2Scopes are the scopes requested, separated by spaces.
	// Default: none (the token endpoint's default).
	OAuth2Scopes string `env:"WEBHOOK_OAUTH2_SCOPES" desc:"OAuth 2.0 scopes to request, separated by spaces"`

	// Timeout bounds one request, from sending it to reading the answer.
	// Default: 10s.
	Timeout time.Duration `env:"WEBHOOK_TIMEOUT" envDefault:"10s" desc:"time limit of one request, answer included"`

	// RateLimit caps requests per second (fractions allowed: 0.5 is one
	// every two seconds). Default: 0, unlimited.
	RateLimit float64 `env:"WEBHOOK_RATE_LIMIT" envDefault:"0" desc:"maximum requests per second to the receiver (0: unlimited)"`
	// RateBurst is how many requests may go at once above RateLimit after
	// a quiet spell. Default: 1.
	RateBurst int `env:"WEBHOOK_RATE_BURST" envDefault:"1" desc:"requests allowed in a burst above WEBHOOK_RATE_LIMIT"`

	// RetryableStatus lists 4xx status codes that are retried instead of
	// dead-lettered (429 always is; 410 always pauses). Default: 408,425.
	RetryableStatus []int `env:"WEBHOOK_RETRYABLE_STATUS" envDefault:"408,425" desc:"4xx status codes retried instead of dead-lettered, comma-separated (429 is always retried)"`
}

// Enabled reports whether WEBHOOK_URL is set, i.e. whether the webhook
// consumer should run at all.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate checks every field and returns all problems at once. Each error
// names its variable; none contains a secret value or the URL's query.
// An empty WEBHOOK_URL is not an error (the consumer then does not run);
// NewSender refuses it.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.URL != "" {
		_, err := parseTarget(c.URL)
		add(err)
	}
	if c.Secret != "" {
		// ParseSecrets' errors already name WEBHOOK_SECRET and hold no key material.
		_, err := ParseSecrets(c.Secret)
		add(err)
	}
	switch c.Format {
	case FormatEnmeshed, FormatCloudEvents, FormatCloudEventsStructured:
	default:
		add(fmt.Errorf("WEBHOOK_FORMAT %q: want %s, %s or %s", c.Format, FormatEnmeshed, FormatCloudEvents, FormatCloudEventsStructured))
	}
	if _, err := c.TriggerPatterns(); err != nil {
		add(err)
	}
	if c.Durable != "" {
		if err := router.ValidateToken(c.Durable); err != nil {
			add(fmt.Errorf("WEBHOOK_DURABLE: %w", err))
		}
	}
	_, err := c.staticHeaders()
	add(err)
	add(c.validateAuth())
	if c.Timeout <= 0 {
		add(fmt.Errorf("WEBHOOK_TIMEOUT %s: want a positive duration such as 10s", c.Timeout))
	}
	if math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || c.RateLimit < 0 {
		add(fmt.Errorf("WEBHOOK_RATE_LIMIT %v: want requests per second, 0 or more (0: unlimited)", c.RateLimit))
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		// A limiter with burst 0 never lets a request through.
		add(fmt.Errorf("WEBHOOK_RATE_BURST %d: want 1 or more when WEBHOOK_RATE_LIMIT is set", c.RateBurst))
	}
	for _, code := range c.RetryableStatus {
		switch {
		case code < 400 || code > 499:
			add(fmt.Errorf("WEBHOOK_RETRYABLE_STATUS: %d is not a 4xx status (5xx are always retried)", code))
		case code == http.StatusGone:
			add(errors.New("WEBHOOK_RETRYABLE_STATUS: 410 cannot be retried: it pauses the consumer until the endpoint is fixed"))
		}
	}
	return errors.Join(errs...)
}

// validateAuth checks the API key and the OAuth 2.0 settings.
func (c Config) validateAuth() error {
	var errs []error
	if c.APIKey != "" || c.APIKeyHeader != "" {
		if !httpguts.ValidHeaderFieldName(c.APIKeyHeader) {
			errs = append(errs, fmt.Errorf("WEBHOOK_API_KEY_HEADER %q: not a valid header name", c.APIKeyHeader))
		} else if c.APIKey != "" && reservedHeader(c.APIKeyHeader) {
			errs = append(errs, fmt.Errorf("WEBHOOK_API_KEY_HEADER %q: the sender sets this header itself", c.APIKeyHeader))
		}
	}
	if c.APIKey != "" && !httpguts.ValidHeaderFieldValue(c.APIKey) {
		errs = append(errs, errors.New("WEBHOOK_API_KEY: contains a control character (CR, LF, …), which cannot go into a header"))
	}

	set := map[string]bool{
		"WEBHOOK_OAUTH2_TOKEN_URL":     c.OAuth2TokenURL != "",
		"WEBHOOK_OAUTH2_CLIENT_ID":     c.OAuth2ClientID != "",
		"WEBHOOK_OAUTH2_CLIENT_SECRET": c.OAuth2ClientSecret != "",
	}
	var missing []string
	for name, ok := range set {
		if !ok {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	switch {
	case len(missing) == len(set):
		if c.OAuth2Scopes != "" {
			errs = append(errs, errors.New("WEBHOOK_OAUTH2_SCOPES is set but WEBHOOK_OAUTH2_TOKEN_URL, WEBHOOK_OAUTH2_CLIENT_ID and WEBHOOK_OAUTH2_CLIENT_SECRET are not"))
		}
	case len(missing) > 0:
		// Half an OAuth setup would send requests without the token the
		// receiver expects: every one would fail.
		errs = append(errs, fmt.Errorf("OAuth 2.0 needs WEBHOOK_OAUTH2_TOKEN_URL, WEBHOOK_OAUTH2_CLIENT_ID and WEBHOOK_OAUTH2_CLIENT_SECRET together; %s not set", strings.Join(missing, ", ")))
	default:
		if _, err := parseHTTPURL("WEBHOOK_OAUTH2_TOKEN_URL", c.OAuth2TokenURL); err != nil {
			errs = append(errs, err)
		}
		if c.APIKey != "" && strings.EqualFold(c.APIKeyHeader, "Authorization") {
			errs = append(errs, errors.New("WEBHOOK_API_KEY_HEADER is Authorization, which OAuth 2.0 uses for its bearer token"))
		}
	}
	return errors.Join(errs...)
}

// oauth2Enabled reports whether requests carry an OAuth 2.0 bearer token.
func (c Config) oauth2Enabled() bool { return c.OAuth2TokenURL != "" }

// TriggerPatterns parses WEBHOOK_TRIGGERS.
func (c Config) TriggerPatterns() (router.Patterns, error) {
	ps, err := router.ParsePatterns(c.Triggers)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_TRIGGERS: %w", err)
	}
	return ps, nil
}

// DurableName returns the durable consumer name: WEBHOOK_DURABLE when set,
// else "webhook-" and the first 8 hex digits of SHA-256 over the URL's
// scheme + "://" + host + path. Query and user info are left out (they
// carry credentials, which rotate without the endpoint changing), the host
// is lower-cased and an empty path is "/" (each names the same endpoint),
// so a restart keeps the durable while two endpoints never share one —
// sharing would split the events between them.
//
// Call it on a validated Config.
func (c Config) DurableName() string {
	if c.Durable != "" {
		return c.Durable
	}
	sum := sha256.Sum256([]byte(endpointOf(c.URL)))
	return "webhook-" + hex.EncodeToString(sum[:4])
}

// endpointOf returns scheme://host/path of a URL template: what identifies
// the endpoint, and what may be logged. A URL that does not parse yields
// "" (Validate reports it).
func endpointOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + path
}

// parseTarget validates WEBHOOK_URL, a template in which
// router.TriggerPlaceholder may appear in the path or query.
func parseTarget(raw string) (*url.URL, error) {
	// Parse the URL with the placeholder filled in twice, differently:
	// if scheme or host change, the placeholder sits where a namespace
	// must not go.
	u, err := parseHTTPURL("WEBHOOK_URL", strings.ReplaceAll(raw, router.TriggerPlaceholder, "a"))
	if err != nil {
		return nil, err
	}
	if strings.Contains(raw, router.TriggerPlaceholder) {
		v, err := url.Parse(strings.ReplaceAll(raw, router.TriggerPlaceholder, "b"))
		if err != nil || v.Scheme != u.Scheme || v.Host != u.Host {
			return nil, fmt.Errorf("WEBHOOK_URL: %s may appear only in the path or the query", router.TriggerPlaceholder)
		}
	}
	return u, nil
}

// parseHTTPURL checks that raw is an absolute http or https URL without
// user info. Its errors name the variable but never quote the URL: its
// query or user info may hold credentials.
func parseHTTPURL(name, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole input; its Err describes the problem
		// with at most a fragment of it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: not a valid URL: %w", name, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: scheme %q: want an absolute http:// or https:// URL", name, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: no host: want an absolute http:// or https:// URL", name)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: user info (user:password@) is not allowed: credentials in a URL leak into logs and proxies; use WEBHOOK_API_KEY or WEBHOOK_HEADERS (e.g. 'Authorization: Basic …') instead", name)
	}
	return u, nil
}

// staticHeaders parses WEBHOOK_HEADERS. Errors name entries by position and
// header names only when valid, never values.
func (c Config) staticHeaders() (http.Header, error) {
	h := make(http.Header)
	if strings.TrimSpace(c.Headers) == "" {
		return h, nil
	}
	// Splitting on '\n' and trimming takes CRLF line endings (a secret
	// file written on Windows) in its stride; any other CR is rejected
	// below as part of a value.
	entries := strings.FieldsFunc(c.Headers, func(r rune) bool { return r == '\n' || r == ';' })
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		pos := i + 1
		name, value, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d: no ':'; want 'Name: value' entries separated by newlines or ';'", pos)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !httpguts.ValidHeaderFieldName(name) {
			// Not quoted: a malformed entry may well be a value.
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d: the name is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)", pos)
		}
		switch {
		case value == "":
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d (%s): empty value", pos, name)
		case !httpguts.ValidHeaderFieldValue(value):
			// CR and LF would split the header (net/http refuses them
			// too, but only at send time, for every event); NUL and the
			// other control characters are refused by many servers.
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d (%s): the value contains a control character (CR, LF, …)", pos, name)
		case reservedHeader(name):
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d: %s is set by the sender itself", pos, name)
		case c.APIKey != "" && strings.EqualFold(name, c.APIKeyHeader):
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d: %s is already set from WEBHOOK_API_KEY", pos, name)
		case c.oauth2Enabled() && strings.EqualFold(name, "Authorization"):
			return nil, fmt.Errorf("WEBHOOK_HEADERS: entry %d: Authorization carries the OAuth 2.0 bearer token", pos)
		}
		h.Add(name, value)
	}
	return h, nil
}

// reservedHeader reports whether the sender sets the header itself (or
// net/http does), so a static header of that name would clash.
func reservedHeader(name string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "ce-") {
		return true
	}
	switch n {
	case "host", "content-length", "content-type", "transfer-encoding", "connection",
		"keep-alive", "proxy-connection", "te", "trailer", "upgrade", "user-agent",
		HeaderID, HeaderTimestamp, HeaderSignature,
		router.HeaderCorrelationID, router.HeaderTraceparent:
		return true
	}
	return false
}

// LogValue implements slog.LogValuer so a Config can be logged as is:
// secrets show only whether they are set, the URL only scheme, host and
// path, and static headers only their names.
func (c Config) LogValue() slog.Value {
	var names []string
	if h, err := c.staticHeaders(); err == nil {
		for name := range h {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	attrs := []slog.Attr{
		slog.String("url", endpointOf(c.URL)),
		slog.Bool("signed", c.Secret != ""),
		slog.String("format", string(c.Format)),
		slog.String("triggers", c.Triggers),
		slog.String("durable", c.DurableName()),
		slog.Any("headers", names),
		slog.Bool("api_key", c.APIKey != ""),
		slog.Duration("timeout", c.Timeout),
		slog.Float64("rate_limit", c.RateLimit),
		slog.Int("rate_burst", c.RateBurst),
		slog.Any("retryable_status", c.RetryableStatus),
	}
	if c.APIKey != "" {
		attrs = append(attrs, slog.String("api_key_header", c.APIKeyHeader))
	}
	if c.oauth2Enabled() {
		attrs = append(attrs,
			slog.String("oauth2_token_url", endpointOf(c.OAuth2TokenURL)),
			slog.String("oauth2_client_id", c.OAuth2ClientID),
			slog.String("oauth2_scopes", c.OAuth2Scopes))
	}
	return slog.GroupValue(attrs...)
}
