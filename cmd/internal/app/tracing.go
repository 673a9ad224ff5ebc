//go:build !otel

package app

import (
	"context"
	"log/slog"
	"os"
)

// StartTracing sets up span export for service. This build has none: it
// was built without -tags otel, so no OpenTelemetry SDK or OTLP exporter is
// linked. Spans (ingest, deliver) are no-ops, and a traceparent still
// travels from ingest to the webhook unchanged. When the OTLP endpoint is
// configured anyway, StartTracing warns that it is ignored. The shutdown
// function does nothing.
func StartTracing(ctx context.Context, service string, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	if otlpEndpoint() != "" {
		log.Warn("OTEL_EXPORTER_OTLP_ENDPOINT is set, but this binary was built without -tags otel: no spans are exported (traceparent still passes through)",
			"service", service)
	}
	return func(context.Context) error { return nil }, nil
}

// otlpEndpoint returns the configured OTLP traces endpoint, if any.
func otlpEndpoint() string {
	if ep := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); ep != "" {
		return ep
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}
