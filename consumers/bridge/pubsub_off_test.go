//go:build !pubsub

package bridge_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eventmesh/eventmesh/consumers/bridge"
)

// Built without -tags pubsub, the pubsub scheme is refused with an error
// that names BRIDGE_URL and the tag.
func TestPubSubNotBuiltIn(t *testing.T) {
	_, err := bridge.Open(context.Background(), bridge.Options{URL: mustURL(t, "pubsub://p/events")})
	if err == nil || !strings.HasPrefix(err.Error(), "BRIDGE_URL:") || !strings.Contains(err.Error(), "-tags pubsub") {
		t.Fatalf("open: %v, want an error naming BRIDGE_URL and -tags pubsub", err)
	}
}
