//go:build !otel

package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
)

// Without -tags otel nothing is exported; a configured endpoint is
// ignored with a warning that names the missing build tag.
func TestTracingWithoutTag(t *testing.T) {
	for _, endpoint := range []string{"", "http://collector:4318"} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
		var buf bytes.Buffer
		shutdown, err := app.StartTracing(context.Background(), "eventmesh-test", slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil || shutdown == nil {
			t.Fatalf("StartTracing: %v", err)
		}
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		warned := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "-tags otel")
		if warned != (endpoint != "") {
			t.Errorf("endpoint %q: log %q", endpoint, buf.String())
		}
	}
}
