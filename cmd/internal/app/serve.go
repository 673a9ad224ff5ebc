package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// SignalContext returns a context cancelled by SIGINT or SIGTERM.
func SignalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors (a registry per process, not the global one, so tests that
// start several components in one process do not collide).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Ops adds /healthz (the process runs), /readyz (ready() returns nil) and
// /metrics to mux.
func Ops(mux *http.ServeMux, reg *prometheus.Registry, ready func(context.Context) error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// HTTPServer is a listening HTTP server.
type HTTPServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
	log  *slog.Logger
}

// Listen binds addr at once, so a taken port is an error at start that
// names the variable (varName), then serves h in the background; with a
// TLS config (TLSFiles.Config), over TLS.
func Listen(varName, addr string, h http.Handler, log *slog.Logger, tlsConfig ...*tls.Config) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", varName, addr, err)
	}
	scheme := "http"
	if len(tlsConfig) > 0 && tlsConfig[0] != nil {
		ln = tls.NewListener(ln, tlsConfig[0])
		scheme = "https"
	}
	s := &HTTPServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan error, 1),
		log:  log,
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "var", varName)
	return s, nil
}

// Addr is the address the server listens on.
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// Done delivers the error that stopped the server.
func (s *HTTPServer) Done() <-chan error { return s.done }

// Shutdown stops accepting requests and waits (up to timeout) for the ones
// in flight: an ingest request in flight waits for its acknowledgement, so
// none that will get a 2xx is cut off.
func (s *HTTPServer) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.srv.Close()
	}
	return err
}
