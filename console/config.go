package console

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// Config is the console's configuration (CONSOLE_*), parsed by the binary
// that serves it. Call Validate before use.
type Config struct {
	// Addr is where the console listens. Empty: off (eventmesh), a start
	// error (cmd/console).
	Addr string `env:"CONSOLE_ADDR" envDefault:"127.0.0.1:8088" empty:"off" desc:"address of the operator console (empty: off in eventmesh; required by the console binary); beyond loopback it needs CONSOLE_PASSWORD"`
	// Password guards the console: with it every page needs a login.
	// Required beyond loopback; also the key of the session cookie, so
	// replicas with the same password accept each other's logins.
	Password string `env:"CONSOLE_PASSWORD" secret:"true" desc:"password of the console's login (required when CONSOLE_ADDR is not loopback; also signs the session cookie)"`
	// Hosts are the host names requests may carry (DNS rebinding).
	Hosts string `env:"CONSOLE_HOSTS" desc:"host names the console answers to, separated by commas (compared without the port; other Host headers get 403); default: localhost, 127.0.0.1, ::1 and the host of CONSOLE_ADDR"`
	// ReadOnly hides and refuses every action.
	ReadOnly bool `env:"CONSOLE_READONLY" envDefault:"false" desc:"true: the console shows everything and changes nothing (no pause, resume, replay or purge)"`
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration `env:"CONSOLE_SESSION_TTL" envDefault:"12h" desc:"how long a console login lasts"`
	// MaxTails caps the Live pages streaming at once.
	MaxTails int `env:"CONSOLE_MAX_TAILS" envDefault:"8" desc:"most Live pages streaming at once; more get 503"`
	// ChartWindow is the span of the overview's chart.
	ChartWindow time.Duration `env:"CONSOLE_CHART_WINDOW" envDefault:"6h" desc:"span of the overview's chart of events in and delivered per minute"`
	// Refresh is how often the overview's states and chart are sampled.
	Refresh time.Duration `env:"CONSOLE_REFRESH" envDefault:"10s" desc:"how often the console samples the consumers' states and the chart in the background"`
	TLSCert string        `env:"CONSOLE_TLS_CERT" desc:"certificate (PEM) to serve the console over HTTPS; re-read when it changes"`
	TLSKey  string        `env:"CONSOLE_TLS_KEY" desc:"its private key (PEM)"`
}

// Validate checks the settings; errors name the variable. An empty Addr
// is valid (off).
func (c Config) Validate() error {
	var err error
	if c.Addr != "" {
		if _, _, e := net.SplitHostPort(c.Addr); e != nil {
			err = errors.Join(err, fmt.Errorf("CONSOLE_ADDR %q: %w", c.Addr, e))
		} else if !c.Loopback() && c.Password == "" {
			err = errors.Join(err, fmt.Errorf("CONSOLE_ADDR %s is reachable from other hosts but CONSOLE_PASSWORD is not set: the console shows personal data and can replay and purge events", c.Addr))
		}
	}
	if c.SessionTTL <= 0 {
		err = errors.Join(err, fmt.Errorf("CONSOLE_SESSION_TTL %s: want a positive duration", c.SessionTTL))
	}
	if c.MaxTails < 1 {
		err = errors.Join(err, fmt.Errorf("CONSOLE_MAX_TAILS %d: want at least 1", c.MaxTails))
	}
	if c.ChartWindow < time.Minute {
		err = errors.Join(err, fmt.Errorf("CONSOLE_CHART_WINDOW %s: want at least 1m", c.ChartWindow))
	}
	if c.Refresh < time.Second {
		err = errors.Join(err, fmt.Errorf("CONSOLE_REFRESH %s: want at least 1s", c.Refresh))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		err = errors.Join(err, errors.New("CONSOLE_TLS_CERT and CONSOLE_TLS_KEY must be set together"))
	}
	return err
}

// Loopback reports whether Addr listens on loopback only.
func (c Config) Loopback() bool {
	host, _, err := net.SplitHostPort(c.Addr)
	return err == nil && router.LoopbackHost(host)
}

// AllowedHosts returns the host names requests may carry: CONSOLE_HOSTS,
// else the loopback names and the host of Addr (unless it is every
// interface, which names no host).
func (c Config) AllowedHosts() []string {
	if strings.TrimSpace(c.Hosts) != "" {
		var hs []string
		for _, h := range strings.FieldsFunc(c.Hosts, func(r rune) bool { return r == ',' || r == ' ' }) {
			hs = append(hs, strings.ToLower(strings.Trim(h, "[]")))
		}
		return hs
	}
	hs := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(c.Addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			hs = append(hs, strings.ToLower(host))
		}
	}
	return hs
}
