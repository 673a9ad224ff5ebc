package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultURL is the server the separate binaries use when NATS_URL is unset.
const DefaultURL = "nats://127.0.0.1:4222"

// ConnConfig is how a binary reaches an external NATS server, with the
// variable names of the nats CLI. A context (NATS_CONTEXT) is read only when
// named; any NATS_* variable that is set overrides the context's value.
type ConnConfig struct {
	URL      string `env:"NATS_URL" desc:"NATS server URL(s), comma-separated (default nats://127.0.0.1:4222; eventmesh: its embedded server)"`
	Context  string `env:"NATS_CONTEXT" desc:"name of a nats CLI context to read (or a path to its JSON file)"`
	Creds    string `env:"NATS_CREDS" desc:"path to a user credentials (.creds) file"`
	NKey     string `env:"NATS_NKEY" desc:"path to an nkey seed file"`
	User     string `env:"NATS_USER" desc:"user name"`
	Password string `env:"NATS_PASSWORD" secret:"true" desc:"password"`
	Token    string `env:"NATS_TOKEN" secret:"true" desc:"authentication token"`
	CA       string `env:"NATS_CA" desc:"path to a CA certificate (PEM) to verify the server"`
	Cert     string `env:"NATS_CERT" desc:"path to a client certificate (PEM) for mutual TLS"`
	Key      string `env:"NATS_KEY" desc:"path to the client certificate's key (PEM)"`
}

// natsContext is the part of a nats CLI context file we use.
type natsContext struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`
}

// Resolve returns the configuration with the named context's values filled
// in where no NATS_* variable was set.
func (c ConnConfig) Resolve() (ConnConfig, error) {
	if c.Context == "" {
		return c, nil
	}
	path := c.Context
	if !filepath.IsAbs(path) {
		if strings.ContainsAny(path, `/\`) || strings.HasPrefix(path, ".") {
			return c, fmt.Errorf("NATS_CONTEXT %q: a context name must not contain a path separator (or give an absolute path to its file)", c.Context)
		}
		dir := os.Getenv("XDG_CONFIG_HOME")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return c, fmt.Errorf("NATS_CONTEXT: %w", err)
			}
			dir = filepath.Join(home, ".config")
		}
		path = filepath.Join(dir, "nats", "context", c.Context+".json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("NATS_CONTEXT %q: %w", c.Context, err)
	}
	var nc natsContext
	if err := json.Unmarshal(b, &nc); err != nil {
		return c, fmt.Errorf("NATS_CONTEXT %q: %s: %w", c.Context, path, err)
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = expandHome(v)
		}
	}
	fill(&c.URL, nc.URL)
	fill(&c.Token, nc.Token)
	fill(&c.User, nc.User)
	fill(&c.Password, nc.Password)
	fill(&c.Creds, nc.Creds)
	fill(&c.NKey, nc.NKey)
	fill(&c.Cert, nc.Cert)
	fill(&c.Key, nc.Key)
	fill(&c.CA, nc.CA)
	return c, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// Validate checks combinations that cannot work.
func (c ConnConfig) Validate() error {
	if (c.Cert == "") != (c.Key == "") {
		return errors.New("NATS_CERT and NATS_KEY must be set together")
	}
	if c.Password != "" && c.User == "" {
		return errors.New("NATS_PASSWORD is set but NATS_USER is not")
	}
	n := 0
	for _, s := range []string{c.Creds, c.NKey, c.User, c.Token} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("set only one of NATS_CREDS, NATS_NKEY, NATS_USER and NATS_TOKEN")
	}
	for _, u := range strings.Split(c.URL, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if _, err := url.Parse(u); err != nil {
			return fmt.Errorf("NATS_URL: %s", Redact(u))
		}
	}
	return nil
}

// Options returns the nats.go options for the credentials and TLS settings.
func (c ConnConfig) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	return opts, nil
}

// Redact removes passwords and tokens from a NATS URL list (comma
// separated, as NATS_URL takes it) so it can be logged. Each URL is
// redacted on its own: parsed as one, the list keeps the later URLs'
// user info as a "path".
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			parts[i] = "(unparsable URL)"
			continue
		}
		if p.User != nil {
			p.User = url.User("REDACTED")
		}
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Connect connects to the server(s) of c (DefaultURL when none is set) as
// name, reconnecting forever, and logs connection changes without secrets.
// The first connection is retried until ctx ends, so a binary started before
// its server waits rather than fails.
func Connect(ctx context.Context, c ConnConfig, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	c, err := c.Resolve()
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	servers := c.URL
	if servers == "" {
		servers = DefaultURL
	}
	opts = append(opts, BaseOptions(name, log)...)
	opts = append(opts, extra...)
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(servers, opts...)
		if err == nil {
			return nc, nil
		}
		if AuthError(err) {
			return nil, fmt.Errorf("connect to NATS %s: %w (check NATS_CREDS, NATS_NKEY, NATS_USER/NATS_PASSWORD or NATS_TOKEN)", Redact(servers), err)
		}
		log.Warn("NATS not reachable yet; retrying", "url", Redact(servers), "attempt", attempt, "err", err)
		if !waitAttempt(ctx, attempt) {
			return nil, fmt.Errorf("connect to NATS %s: %w", Redact(servers), err)
		}
	}
}

// AuthError reports whether err is the server refusing a connection's
// credentials (or their absence): retrying would not help.
func AuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// BaseOptions are the options every connection of ours uses: a name, endless
// reconnects, and handlers that log instead of failing silently.
func BaseOptions(name string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", Redact(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("NATS async error", "subject", subject, "err", err)
		}),
	}
}

// NewJetStream returns the JetStream API on nc with the publishing options
// every publisher of ours uses: a bounded window of in-flight async
// publishes, a timeout after which an unacknowledged one fails (so the
// caller retries it instead of waiting forever), and a handler that logs
// failed async publishes.
func NewJetStream(nc *nats.Conn, log *slog.Logger) (jetstream.JetStream, error) {
	return jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(10*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			log.Debug("async publish failed", "subject", m.Subject, "err", err)
		}),
	)
}
