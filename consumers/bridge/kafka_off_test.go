//go:build !kafka

package bridge_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eventmesh/eventmesh/consumers/bridge"
)

// Built without -tags kafka, the kafka scheme is refused with an error
// that names BRIDGE_URL and the tag.
func TestKafkaNotBuiltIn(t *testing.T) {
	_, err := bridge.Open(context.Background(), bridge.Options{URL: mustURL(t, "kafka://127.0.0.1:9092/events")})
	if err == nil || !strings.HasPrefix(err.Error(), "BRIDGE_URL:") || !strings.Contains(err.Error(), "-tags kafka") {
		t.Fatalf("open: %v, want an error naming BRIDGE_URL and -tags kafka", err)
	}
}
