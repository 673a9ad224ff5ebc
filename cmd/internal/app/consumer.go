package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Runner is a consumer the binaries run: a consumer runtime, or the
// archiver around one.
type Runner interface {
	Name() string
	Run(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Runtimes runs consumers until their context ends, then waits for them
// to drain.
type Runtimes struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	list   []Runner
}

// StartRuntimes runs each consumer in the background.
func StartRuntimes(ctx context.Context, log *slog.Logger, rts ...Runner) *Runtimes {
	ctx, cancel := context.WithCancel(ctx)
	r := &Runtimes{cancel: cancel, errs: make(chan error, len(rts)), list: rts}
	for _, rt := range rts {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := rt.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("consumer stopped", "consumer", rt.Name(), "err", err)
				r.errs <- fmt.Errorf("consumer %s: %w", rt.Name(), err)
			}
		}()
	}
	return r
}

// Failed delivers the error of a runtime that stopped on its own.
func (r *Runtimes) Failed() <-chan error { return r.errs }

// Ready is nil when every runtime is ready.
func (r *Runtimes) Ready(ctx context.Context) error {
	for _, rt := range r.list {
		if err := rt.Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops fetching and waits for in-flight events to settle.
func (r *Runtimes) Stop() {
	r.cancel()
	r.wg.Wait()
}

// ConsumerHTTP serves /healthz, /readyz and /metrics of a consumer binary
// on HTTP_ADDR.
func ConsumerHTTP(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger) (*HTTPServer, error) {
	mux := http.NewServeMux()
	Ops(mux, reg, ready)
	return Listen("HTTP_ADDR", addr, mux, log)
}
