// Package consoling wires the operator console for the binaries that
// serve it (console, eventmesh): the console's listener on CONSOLE_ADDR,
// TLS, and its background sampler.
package consoling

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/console"
)

// Server is a running console.
type Server struct {
	HTTP *app.HTTPServer
	stop context.CancelFunc
	done chan struct{}
}

// Start serves the console on cfg.Addr (a taken address is an error
// naming CONSOLE_ADDR) and starts its sampler. On loopback without a
// password it warns that anyone on this host can use it.
func Start(ctx context.Context, cfg console.Config, deps console.Deps, log *slog.Logger) (*Server, error) {
	deps.Log = log
	c, err := console.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := app.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey}.Config("CONSOLE_TLS")
	if err != nil {
		return nil, err
	}
	if cfg.Password == "" {
		log.Warn("the console needs no login: anyone who can reach "+cfg.Addr+" on this host can pause consumers and replay or purge events "+
			"(set CONSOLE_PASSWORD to require one, CONSOLE_READONLY=true to forbid actions, or CONSOLE_ADDR= to turn it off)", "addr", cfg.Addr)
	}
	srv, err := app.Listen("CONSOLE_ADDR", cfg.Addr, c.Handler(), log, tlsConfig)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	s := &Server{HTTP: srv, stop: stop, done: make(chan struct{})}
	go func() { defer close(s.done); c.Run(ctx) }()
	return s, nil
}

// Shutdown stops the sampler and the server; open Live tails end.
func (s *Server) Shutdown() {
	s.stop()
	s.HTTP.Shutdown(2 * time.Second)
	<-s.done
}
