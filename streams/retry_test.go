package streams_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNotReady(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"timeout", fmt.Errorf("look up stream X: %w", context.DeadlineExceeded), true},
		{"nats timeout", nats.ErrTimeout, true},
		{"no responders", nats.ErrNoResponders, true},
		{"reconnecting", nats.ErrConnectionReconnecting, true},
		{"jetstream not enabled", fmt.Errorf("create stream X: %w", jetstream.ErrJetStreamNotEnabled), true},
		{"no cluster leader", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{"peer offline", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{"peer offline and no storage", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline, insufficient storage"}, false},
		{"more replicas than servers", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, false},
		{"insufficient resources", &jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}, false},
		{"not enabled for the account", &jetstream.APIError{Code: 503, ErrorCode: 10039, Description: "JetStream not enabled for account"}, false},
		{"stream not found", jetstream.ErrStreamNotFound, false},
		{"replicas without a cluster", &jetstream.APIError{Code: 400, ErrorCode: 10074, Description: "replicas > 1 not supported in non-clustered mode"}, false},
		{"bad request", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest, Description: "bad request"}, false},
		{"conflict", fmt.Errorf("%w: storage differs", streams.ErrConflict), false},
		{"conflict wrapping a timeout", fmt.Errorf("%w: %w", streams.ErrConflict, context.DeadlineExceeded), false},
		{"canceled", context.Canceled, false},
		{"plain", errors.New("durable X was created with start new"), false},
	} {
		if got := streams.NotReady(tc.err); got != tc.want {
			t.Errorf("%s: NotReady(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestRetryStopsAtAFinalError(t *testing.T) {
	calls := 0
	final := errors.New("refused")
	err := streams.Retry(context.Background(), natstest.Logger(t), "step", func(context.Context) error {
		calls++
		return final
	})
	if !errors.Is(err, final) || calls != 1 {
		t.Errorf("Retry = %v after %d calls, want the final error after 1", err, calls)
	}
}

func TestRetryEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := streams.Retry(ctx, natstest.Logger(t), "step", func(context.Context) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nats.ErrTimeout
	})
	if err == nil {
		t.Error("Retry returned nil after its context ended")
	}
	if calls != 2 {
		t.Errorf("step ran %d times, want 2 (not again after the context ended)", calls)
	}
}

// Await retries what Retry takes as final (a stream another process has
// not created yet), until the step succeeds.
func TestAwaitRetriesEveryError(t *testing.T) {
	calls := 0
	err := streams.Await(context.Background(), natstest.Logger(t), "step", func(context.Context) error {
		if calls++; calls < 3 {
			return jetstream.ErrStreamNotFound
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Await = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestAwaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := streams.Await(ctx, natstest.Logger(t), "step", func(context.Context) error {
		if calls++; calls == 2 {
			cancel()
		}
		return errors.New("refused")
	})
	if err == nil || calls != 2 {
		t.Errorf("Await = %v after %d calls, want an error after 2 (not again after the context ended)", err, calls)
	}
}

// A binary started before its server's JetStream is up waits for it: the
// server answers no-responders until JetStream is enabled, then the
// stream is created.
func TestRetryWaitsForJetStream(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	failed := make(chan error, 100)
	done := make(chan error, 1)
	def := streams.AdvisoriesStream()
	go func() {
		done <- streams.Retry(context.Background(), natstest.Logger(t), "stream", func(ctx context.Context) error {
			_, err := streams.EnsureFixedStream(ctx, js, def)
			if err != nil {
				failed <- err
			}
			return err
		})
	}()
	select {
	case err := <-failed:
		if !streams.NotReady(err) {
			t.Fatalf("without JetStream the step failed with %v, which Retry takes as final", err)
		}
	case err := <-done:
		t.Fatalf("Retry returned %v before JetStream was enabled", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the step never ran")
	}
	if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir(), MaxMemory: 64 << 20, MaxStore: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Retry = %v after JetStream was enabled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Retry did not finish after JetStream was enabled")
	}
	if _, err := js.Stream(context.Background(), def.Name); err != nil {
		t.Errorf("stream %s after Retry: %v", def.Name, err)
	}
}

// In a cluster that lost its quorum, setting up a replicated stream gets
// no answer or a 503 (the old stream leader may still answer a lookup of
// its own stream until it notices): NotReady must say so, or a consumer started while
// its cluster elects leaders exits instead of waiting (a CI run saw
// "look up stream ENMESHED_DLQ: context deadline exceeded").
func TestNotReadyInALeaderlessCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := natstest.StartCluster(t, 3)
	js := natstest.JetStream(t, natstest.Connect(t, c.Servers[0].ClientURL()))
	def := streams.AdvisoriesStream()
	def.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := streams.Retry(ctx, natstest.Logger(t), "stream", func(ctx context.Context) error {
		_, err := streams.EnsureFixedStream(ctx, js, def)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// More replicas than servers: final while every node is up.
	five := streams.AdvisoriesStream()
	five.Name, five.Subjects, five.Replicas = "FIVE", []string{"five.>"}, 5
	calls := 0
	err := streams.Retry(ctx, natstest.Logger(t), "stream", func(ctx context.Context) error {
		calls++
		_, err := streams.EnsureFixedStream(ctx, js, five)
		return err
	})
	t.Logf("5 replicas on 3 servers: %v", err)
	if err == nil || calls != 1 {
		t.Errorf("5 replicas on 3 servers: %v after %d attempts, want an error after 1", err, calls)
	}
	c.Kill(c.Servers[1])
	c.Kill(c.Servers[2])
	for _, name := range []string{def.Name, "FRESH"} {
		if name != def.Name {
			def.Name, def.Subjects = name, []string{"fresh.>"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := streams.EnsureFixedStream(ctx, js, def)
		cancel()
		t.Logf("stream %s without quorum: %v", name, err)
		if err == nil && name == "FRESH" {
			t.Error("a stream was created without quorum")
		}
		if err != nil && !streams.NotReady(err) {
			t.Errorf("stream %s without quorum: %v, which NotReady takes as final", name, err)
		}
	}
}

// More replicas than a single server can hold is a configuration error:
// the binary stops at once instead of waiting for peers that never come.
func TestNotReadyRefusesReplicasWithoutACluster(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	def := streams.AdvisoriesStream()
	def.Replicas = 3
	calls := 0
	err := streams.Retry(context.Background(), natstest.Logger(t), "stream", func(ctx context.Context) error {
		calls++
		_, err := streams.EnsureFixedStream(ctx, js, def)
		return err
	})
	if err == nil || calls != 1 {
		t.Errorf("3 replicas on one server: %v after %d attempts, want an error after 1", err, calls)
	}
}
