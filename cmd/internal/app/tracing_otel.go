//go:build otel

package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracingShutdownTimeout bounds the flush at exit when the caller's context
// has no deadline: the exporter retries for up to a minute, and an
// unreachable collector must not hold up a shutdown that long.
const tracingShutdownTimeout = 5 * time.Second

// StartTracing sets up span export for service (the default service.name;
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it). It is off
// unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// is set: then an SDK tracer provider exports the spans in batches over
// OTLP/HTTP (protobuf), configured by the standard OTEL_EXPORTER_OTLP_*
// variables (headers, timeout, TLS), sampled by OTEL_TRACES_SAMPLER
// (default: parent-based, always on), and the W3C trace context propagator
// is installed. OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it
// off again.
//
// shutdown flushes the spans still buffered and stops the exporter; without
// a deadline on its context it gives up after 5 seconds. A failure to set
// up the exporter is logged as well as returned, with a shutdown that does
// nothing: tracing is optional, and a caller may go on without it.
func StartTracing(ctx context.Context, service string, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	endpoint := otlpEndpoint()
	if endpoint == "" || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return noop, nil
	}
	if p := otlpProtocol(); p != "" && p != "http/protobuf" {
		log.Warn("tracing: only the OTLP http/protobuf protocol is built in; exporting with it", "OTEL_EXPORTER_OTLP_PROTOCOL", p)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		err = fmt.Errorf("tracing: OTLP exporter: %w", err)
		log.Error("spans are not exported", "err", err)
		return noop, err
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", Version)),
		resource.WithFromEnv())
	if err != nil {
		// The resource is still usable: a bad OTEL_RESOURCE_ATTRIBUTES
		// entry is dropped, the rest kept.
		log.Warn("tracing: resource attributes", "err", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: exporting spans failed", "err", err)
	}))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	log.Info("tracing: exporting spans over OTLP/HTTP", "service", service, "endpoint", otlpHost(endpoint))
	return func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tracingShutdownTimeout)
			defer cancel()
		}
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("tracing: flushing spans: %w", err)
		}
		return nil
	}, nil
}

// otlpEndpoint returns the configured OTLP traces endpoint, if any.
func otlpEndpoint() string {
	if ep := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); ep != "" {
		return ep
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

// otlpProtocol returns the configured OTLP protocol for traces, if any.
func otlpProtocol() string {
	if p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p != "" {
		return p
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
}

// otlpHost returns the scheme and host of an endpoint for the log,
// without user info, path or query.
func otlpHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable)"
	}
	return u.Scheme + "://" + u.Host
}
