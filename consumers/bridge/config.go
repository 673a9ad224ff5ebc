package bridge

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
)

// Config is every BRIDGE_* setting. The shared settings are here; each
// broker's own are in its config type (AMQPConfig in amqp.go, …). Call
// Validate before use.
type Config struct {
	URL     string `env:"BRIDGE_URL" secret:"true" desc:"the broker destination; its scheme picks the broker: amqp(s)://, mqtt(s)://, redis(s)://, pubsub://PROJECT/TOPIC, kafka://HOST:PORT[,HOST:PORT]/TOPIC; the bridge consumer runs only when set"`
	Format  Format `env:"BRIDGE_FORMAT" envDefault:"enmeshed" desc:"enmeshed (what the Connector's messageBrokerPublisher sends, with eventmesh's metadata beside the body) or cloudevents (the protocol binding's binary mode)"`
	Trigger string `env:"BRIDGE_TRIGGERS" envDefault:"**" desc:"events to bridge, Connector trigger patterns separated by commas (transport.messageReceived, transport.*, **)"`
	Durable string `env:"BRIDGE_DURABLE" desc:"durable consumer name ([A-Za-z0-9_-]); default bridge-<8 hex digits of SHA-256 of the scheme, hosts, path and destination>"`
	Order   string `env:"BRIDGE_ORDER" envDefault:"none" desc:"none, or per-key: one peer's events in order (at most one unconfirmed message per key)"`

	TLSCA   string `env:"BRIDGE_TLS_CA" desc:"PEM file of the CA that signs the broker's certificate (default: the system's); for amqps, mqtts, rediss and kafka"`
	TLSCert string `env:"BRIDGE_TLS_CERT" desc:"PEM file of a client certificate, with BRIDGE_TLS_KEY"`
	TLSKey  string `env:"BRIDGE_TLS_KEY" desc:"PEM file of the client certificate's key"`

	AMQP   AMQPConfig
	MQTT   MQTTConfig
	Redis  RedisConfig
	PubSub PubSubConfig
	Kafka  KafkaConfig

	Runtime consumers.Config `envPrefix:"BRIDGE_"`
}

// broker is what the shared code needs of each broker's settings.
type broker interface {
	Destination() string
	validate() error
}

// tlsSchemes are the schemes that always speak TLS; kafka takes TLS when
// BRIDGE_TLS_CA or BRIDGE_TLS_CERT is set.
var tlsSchemes = map[string]bool{"amqps": true, "mqtts": true, "rediss": true}

// Enabled reports whether BRIDGE_URL is set, i.e. whether the bridge
// consumer should run at all.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate checks every setting and returns all problems at once. Each
// error names its variable; none quotes BRIDGE_URL, whose user info and
// query may hold credentials. An empty BRIDGE_URL is not an error (the
// bridge then does not run); a binary that needs it says so.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.URL != "" {
		u, err := c.parseURL()
		add(err)
		if err == nil {
			add(c.broker(u.Scheme).validate())
			add(c.validateTLS(u.Scheme))
		}
	}
	switch c.Format {
	case FormatEnmeshed, FormatCloudEvents:
	default:
		add(fmt.Errorf("BRIDGE_FORMAT %q: want %s or %s", c.Format, FormatEnmeshed, FormatCloudEvents))
	}
	if c.Order != "none" && c.Order != "per-key" {
		add(fmt.Errorf("BRIDGE_ORDER %q: want none or per-key", c.Order))
	}
	_, err := c.TriggerPatterns()
	add(err)
	if c.Durable != "" {
		if err := router.ValidateToken(c.Durable); err != nil {
			add(fmt.Errorf("BRIDGE_DURABLE: %w", err))
		}
	}
	add(c.Runtime.Validate("BRIDGE_"))
	return errors.Join(errs...)
}

// parseURL parses BRIDGE_URL. Its errors never quote the URL.
func (c Config) parseURL() (*url.URL, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		// url.Error repeats the whole input; its Err describes the problem
		// with at most a fragment of it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("BRIDGE_URL: not a valid URL: %w", err)
	}
	if _, ok := openers[u.Scheme]; !ok {
		return nil, fmt.Errorf("BRIDGE_URL: scheme %q: want amqp, amqps, mqtt, mqtts, redis, rediss, pubsub or kafka", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("BRIDGE_URL: no host: want %s://HOST…", u.Scheme)
	}
	return u, nil
}

// broker returns the settings of the broker scheme picks.
func (c Config) broker(scheme string) broker {
	switch scheme {
	case "amqp", "amqps":
		return c.AMQP
	case "mqtt", "mqtts":
		return c.MQTT
	case "redis", "rediss":
		return c.Redis
	case "pubsub":
		return c.PubSub
	}
	return c.Kafka
}

// validateTLS checks the BRIDGE_TLS_* settings against the scheme and
// that their files load.
func (c Config) validateTLS(scheme string) error {
	set := c.TLSCA != "" || c.TLSCert != "" || c.TLSKey != ""
	switch {
	case set && scheme == "pubsub":
		return errors.New("BRIDGE_TLS_CA, BRIDGE_TLS_CERT or BRIDGE_TLS_KEY is set but pubsub:// connects to Google with Google's TLS: unset them")
	case set && !tlsSchemes[scheme] && scheme != "kafka":
		return fmt.Errorf("BRIDGE_TLS_CA, BRIDGE_TLS_CERT or BRIDGE_TLS_KEY is set but BRIDGE_URL's scheme %s speaks no TLS: use %ss://", scheme, scheme)
	}
	_, err := c.tlsConfig("")
	return err
}

// TriggerPatterns parses BRIDGE_TRIGGERS.
func (c Config) TriggerPatterns() (router.Patterns, error) {
	ps, err := router.ParsePatterns(c.Trigger)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_TRIGGERS: %w", err)
	}
	return ps, nil
}

// DurableName returns the durable consumer name: BRIDGE_DURABLE when set,
// else "bridge-" and the first 8 hex digits of SHA-256 over the URL's
// scheme + "://" + host(s) (lower-cased) + path, a newline, and the
// broker's destination (exchange and routing key, topic, stream key or
// channel). User info and query are left out: credentials rotate without
// the destination changing. So a restart keeps the durable while two
// destinations never share one — sharing would split the events between
// them.
//
// Call it on a validated Config.
func (c Config) DurableName() string {
	if c.Durable != "" {
		return c.Durable
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return "bridge-invalid" // Validate reports it
	}
	id := u.Scheme + "://" + strings.ToLower(u.Host) + u.EscapedPath() + "\n" + c.broker(u.Scheme).Destination()
	sum := sha256.Sum256([]byte(id))
	return "bridge-" + hex.EncodeToString(sum[:4])
}

// Redacted returns BRIDGE_URL as it may be logged: user info replaced by
// REDACTED and the query left out (broker URLs carry passwords and tokens
// in both).
func (c Config) Redacted() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	if u.User != nil {
		r.User = url.User("REDACTED")
	}
	return r.String()
}

// TLSConfig returns the client TLS configuration of the broker connection:
// for amqps, mqtts and rediss always (the system's roots unless
// BRIDGE_TLS_CA), for kafka when BRIDGE_TLS_CA or BRIDGE_TLS_CERT is set,
// nil otherwise. Its ServerName is BRIDGE_URL's host when there is one host.
func (c Config) TLSConfig() (*tls.Config, error) {
	u, err := c.parseURL()
	if err != nil {
		return nil, err
	}
	if !tlsSchemes[u.Scheme] && !(u.Scheme == "kafka" && (c.TLSCA != "" || c.TLSCert != "")) {
		return nil, nil
	}
	serverName := ""
	if !strings.Contains(u.Host, ",") {
		serverName = u.Hostname()
	}
	return c.tlsConfig(serverName)
}

// tlsConfig loads the BRIDGE_TLS_* files into a client configuration.
func (c Config) tlsConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("BRIDGE_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("BRIDGE_TLS_CA %s: no PEM certificate in it", c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("BRIDGE_TLS_CERT and BRIDGE_TLS_KEY must be set together")
	}
	if c.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("BRIDGE_TLS_CERT/BRIDGE_TLS_KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Options returns what opening the Publisher of a validated Config takes.
func (c Config) Options(log *slog.Logger) (Options, error) {
	u, err := c.parseURL()
	if err != nil {
		return Options{}, err
	}
	tlsConfig, err := c.TLSConfig()
	if err != nil {
		return Options{}, err
	}
	if log == nil {
		log = slog.Default()
	}
	return Options{URL: u, Format: c.Format, TLS: tlsConfig, Config: c, Durable: c.DurableName(), Log: log}, nil
}

// LogValue implements slog.LogValuer so a Config can be logged as is: the
// URL redacted, the destination and the settings that shape delivery.
func (c Config) LogValue() slog.Value {
	dest := ""
	if u, err := url.Parse(c.URL); err == nil {
		dest = c.broker(u.Scheme).Destination()
	}
	return slog.GroupValue(
		slog.String("url", c.Redacted()),
		slog.String("destination", dest),
		slog.String("format", string(c.Format)),
		slog.String("triggers", c.Trigger),
		slog.String("durable", c.DurableName()),
		slog.String("order", c.Order),
		slog.Bool("tls_ca", c.TLSCA != ""),
		slog.Bool("tls_client_cert", c.TLSCert != ""),
	)
}
