package connector

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults of Config, as in its envDefault tags.
const (
	// DefaultBasePath is where Connector 7.x serves its core API. Connector
	// 3.0 to 6.x used /api/v2, older ones /api/v1.
	DefaultBasePath = "/api/core/v1"
	// DefaultAPIKeyHeader is the Connector's default API key header
	// (infrastructure.httpServer.authentication.apiKey.headerName).
	DefaultAPIKeyHeader = "X-API-KEY"
)

// maxAttempts bounds CONNECTOR_ATTEMPTS: with the backoff capped at a few
// seconds, more attempts only hide an outage from the caller, whose own
// retry (JetStream redelivery, the next poll) is the better place.
const maxAttempts = 10

// Config is how the mesh reaches one enmeshed Connector's REST API. It is
// parsed from the environment by a binary's main; call Validate before use.
// The sync poller and the auto-accept consumer run only when URL is set.
type Config struct {
	// URL is the Connector's address, scheme and host (and a path prefix
	// if a proxy adds one), without user info, query or fragment. No
	// default: unset means there is no Connector to talk to.
	URL string `env:"CONNECTOR_URL" desc:"the enmeshed Connector's base URL (http or https, no credentials); the sync poller and auto-accept run only when set"`

	// APIKey is sent in APIKeyHeader on every request. Required when URL is
	// set: the Connector refuses unauthenticated requests. Never logged.
	APIKey string `env:"CONNECTOR_API_KEY" secret:"true" desc:"API key of the Connector's REST API (required with CONNECTOR_URL)"`

	// APIKeyHeader names the header carrying APIKey; the Connector's is
	// configurable. Default: X-API-KEY.
	APIKeyHeader string `env:"CONNECTOR_API_KEY_HEADER" envDefault:"X-API-KEY" desc:"header that carries CONNECTOR_API_KEY"`

	// BasePath prefixes every route: /api/core/v1 for Connector 7.x,
	// /api/v2 for 3.0 to 6.x. Default: /api/core/v1.
	BasePath string `env:"CONNECTOR_BASE_PATH" envDefault:"/api/core/v1" desc:"path prefix of the Connector's routes: /api/core/v1 (Connector 7.x) or /api/v2 (Connector 3 to 6)"`

	// Timeout bounds one attempt, answer included; each retry gets a
	// fresh one. Default: 10s.
	Timeout time.Duration `env:"CONNECTOR_TIMEOUT" envDefault:"10s" desc:"time limit of one request attempt to the Connector, answer included"`

	// Attempts is how often a request is tried when the Connector is
	// unavailable (5xx, no connection, timeout); 4xx answers are never
	// retried. Default: 3, minimum 1, maximum 10.
	Attempts int `env:"CONNECTOR_ATTEMPTS" envDefault:"3" desc:"attempts per request while the Connector answers 5xx or cannot be reached (1 to 10; 4xx are never retried)"`
}

// Enabled reports whether CONNECTOR_URL is set, i.e. whether the parts that
// talk to the Connector (sync poller, auto-accept) should run.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate checks every field and returns all problems at once. Each error
// names its variable and none contains the API key. An empty CONNECTOR_URL
// is not an error (nothing then talks to the Connector); New refuses it.
func (c Config) Validate() error {
	var errs []error
	if c.URL != "" {
		if _, err := parseBaseURL(c.URL); err != nil {
			errs = append(errs, err)
		}
		if c.APIKey == "" {
			errs = append(errs, errors.New("CONNECTOR_URL is set but CONNECTOR_API_KEY is not: set the Connector's API key (or CONNECTOR_API_KEY_FILE)"))
		}
	}
	if c.APIKey != "" && !httpguts.ValidHeaderFieldValue(c.APIKey) {
		// The value itself is not quoted: it is a secret.
		errs = append(errs, errors.New("CONNECTOR_API_KEY: contains a control character (CR, LF, …), which cannot go into a header"))
	}
	if !httpguts.ValidHeaderFieldName(c.APIKeyHeader) {
		errs = append(errs, fmt.Errorf("CONNECTOR_API_KEY_HEADER %q: not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)", c.APIKeyHeader))
	}
	if err := validateBasePath(c.BasePath); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("CONNECTOR_TIMEOUT %s: want a positive duration such as 10s", c.Timeout))
	}
	if c.Attempts < 1 || c.Attempts > maxAttempts {
		errs = append(errs, fmt.Errorf("CONNECTOR_ATTEMPTS %d: want 1 to %d", c.Attempts, maxAttempts))
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer so a Config can be logged as is: the
// API key shows only whether it is set.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.Bool("api_key", c.APIKey != ""),
		slog.String("api_key_header", c.APIKeyHeader),
		slog.String("base_path", c.BasePath),
		slog.Duration("timeout", c.Timeout),
		slog.Int("attempts", c.Attempts),
	)
}

// parseBaseURL checks CONNECTOR_URL: an absolute http(s) URL with a host
// and no user info, query or fragment (credentials belong in
// CONNECTOR_API_KEY, where they are never logged; a query would be lost
// when routes are appended).
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error quotes the input, which is not secret (no user info
		// is allowed) but may be long; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("CONNECTOR_URL: not a URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("CONNECTOR_URL: scheme %q: want http or https", u.Scheme)
	case u.Host == "":
		return nil, errors.New("CONNECTOR_URL: no host")
	case u.User != nil:
		return nil, errors.New("CONNECTOR_URL: contains user info: put the key in CONNECTOR_API_KEY instead")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("CONNECTOR_URL: has a query: give only scheme, host and an optional path prefix")
	case u.Fragment != "":
		return nil, errors.New("CONNECTOR_URL: has a fragment: give only scheme, host and an optional path prefix")
	}
	return u, nil
}

// validateBasePath checks CONNECTOR_BASE_PATH: empty (routes at the root)
// or an absolute path without query or fragment.
func validateBasePath(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t\r\n") {
		return fmt.Errorf("CONNECTOR_BASE_PATH %q: want a path such as /api/core/v1 (Connector 7.x) or /api/v2 (Connector 3 to 6)", p)
	}
	return nil
}
