package consumers

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// serverInternal tells a server's 500 (retried when a lost durable is set
// up again) from a refusal.
func TestServerInternal(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 500, ErrorCode: 10012}, true},
		{fmt.Errorf("create or update durable x: %w", &jetstream.APIError{Code: 500}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10013}, false},
		{jetstream.ErrConsumerNotFound, false},
		{errors.New("plain"), false},
	} {
		if got := serverInternal(c.err); got != c.want {
			t.Errorf("serverInternal(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
