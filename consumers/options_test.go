package consumers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/nats-io/nats.go/jetstream"
)

// New refuses options that cannot work, with an error naming what is
// wrong, before anything reaches the server.
func TestNewRefusesOptionsThatCannotWork(t *testing.T) {
	js := struct{ jetstream.JetStream }{} // never called: New only checks
	handler := consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { return nil })
	batch := func(context.Context, []consumers.Delivery) error { return nil }
	key := func(consumers.Delivery) string { return "" }
	for _, c := range []struct {
		name string
		o    consumers.Options
		want string // "" when New accepts o
	}{
		{"handler", consumers.Options{Name: "c", Handler: handler}, ""},
		{"per-key order with a handler", consumers.Options{Name: "c", Handler: handler, OrderKey: key}, ""},
		{"batch handler", consumers.Options{Name: "c", BatchHandler: batch, BatchSize: 10, BatchLinger: time.Millisecond}, ""},
		{"a start time", consumers.Options{Name: "c", Handler: handler, DefaultStart: "2024-01-02T03:04:05Z"}, ""},
		{"bad durable name", consumers.Options{Name: "a.b", Handler: handler}, "durable name"},
		{"no name", consumers.Options{Handler: handler}, "durable name"},
		{"no handler", consumers.Options{Name: "c"}, "no handler"},
		{"both handlers", consumers.Options{Name: "c", Handler: handler, BatchHandler: batch}, "both Handler and BatchHandler"},
		{"per-key order with a batch handler", consumers.Options{Name: "c", BatchHandler: batch, OrderKey: key}, "OrderKey"},
		{"batch size without a batch handler", consumers.Options{Name: "c", Handler: handler, BatchSize: 10}, "BatchSize"},
		{"batch linger without a batch handler", consumers.Options{Name: "c", Handler: handler, BatchLinger: time.Second}, "BatchLinger"},
		{"negative batch size", consumers.Options{Name: "c", BatchHandler: batch, BatchSize: -1}, "BatchSize -1 is negative"},
		{"negative batch linger", consumers.Options{Name: "c", BatchHandler: batch, BatchLinger: -time.Second}, "BatchLinger -1s is negative"},
		{"bad default start", consumers.Options{Name: "c", Handler: handler, DefaultStart: "yesterday"}, "DefaultStart"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt, err := consumers.New(js, subjects, fastConfig(), c.o)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want == "" && rt == nil:
				t.Error("no runtime")
			case c.want != "" && err == nil:
				t.Errorf("accepted; want an error about %s", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Errorf("err = %v; want it to name %s", err, c.want)
			}
		})
	}
	if _, err := consumers.New(nil, subjects, fastConfig(), consumers.Options{Name: "c", Handler: handler}); err == nil {
		t.Error("accepted no JetStream")
	}
}
