//go:build pubsub

package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

const testTopic = "projects/test-project/topics/events"

// startPubSub starts Google's in-process fake Pub/Sub server (pstest) on a
// free port with the topic events, and points the client at it through
// PUBSUB_EMULATOR_HOST, the variable an operator sets for an emulator.
// Reactors fail chosen calls.
func startPubSub(t *testing.T, opts ...pstest.ServerReactorOption) *pstest.Server {
	t.Helper()
	srv := pstest.NewServerWithAddress("127.0.0.1:0", opts...)
	t.Cleanup(func() { srv.Close() })
	if _, err := srv.GServer.CreateTopic(context.Background(), &pubsubpb.Topic{Name: testTopic}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	return srv
}

// pubsubReceived returns the messages the server stored, by ce-id (the
// enmeshed format's attribute and the binding's are named alike), each
// id's first; and the ids of each ordering key in the order stored.
func pubsubReceived(srv *pstest.Server) (map[string]*pstest.Message, map[string][]string, int) {
	byID := map[string]*pstest.Message{}
	order := map[string][]string{}
	msgs := srv.Messages()
	for _, m := range msgs {
		id := m.Attributes["ce-id"]
		if _, dup := byID[id]; dup {
			continue
		}
		byID[id] = m
		order[m.OrderingKey] = append(order[m.OrderingKey], id)
	}
	return byID, order, len(msgs)
}

// N events from two publishers at once arrive as N messages: body = data
// byte for byte ({} without data), the attributes of the format, the peer
// as ordering key with BRIDGE_ORDER=per-key and each key's messages in
// order.
func TestPubSubPublish(t *testing.T) {
	for _, tc := range []struct {
		format bridge.Format
		order  string
	}{
		{bridge.FormatEnmeshed, "per-key"},
		{bridge.FormatCloudEvents, "per-key"},
		{bridge.FormatEnmeshed, "none"},
	} {
		t.Run(string(tc.format)+"/"+tc.order, func(t *testing.T) {
			srv := startPubSub(t)
			cfg := bridge.Config{Order: tc.order}
			pubs := []bridge.Publisher{open(t, "pubsub://test-project/events", tc.format, cfg), open(t, "pubsub://test-project/events", tc.format, cfg)}
			if err := pubs[0].Ready(context.Background()); err != nil {
				t.Fatalf("ready: %v", err)
			}
			ms := testMessages(200, 7)
			publishAll(t, pubs, ms, false)

			byID, order, n := pubsubReceived(srv)
			if n != len(ms) {
				t.Errorf("%d messages for %d events", n, len(ms))
			}
			for _, m := range ms {
				e := m.Event
				got, ok := byID[e.ID]
				if !ok {
					t.Errorf("event %s not received", e.ID)
					continue
				}
				wantKey := ""
				if tc.order == "per-key" {
					wantKey = m.Key()
				}
				if string(got.Data) != wantBody(e) || got.OrderingKey != wantKey {
					t.Errorf("event %s: body %q key %q, want %q key %q", e.ID, got.Data, got.OrderingKey, wantBody(e), wantKey)
				}
				if d := diffMeta(got.Attributes, wantMeta(e, tc.format, "ce-", "Content-Type")); d != "" {
					t.Errorf("event %s attributes:%s", e.ID, d)
				}
			}
			if tc.order == "per-key" {
				checkOrder(t, ms, order, func(m bridge.Message) string { return m.Key() })
			}
		})
	}
}

// The connection cut mid-run by a proxy and restored: every event
// arrives, none lost.
func TestPubSubConnectionCut(t *testing.T) {
	srv := startPubSub(t)
	proxy := bridgetest.NewProxy(t, srv.Addr)
	t.Setenv("PUBSUB_EMULATOR_HOST", proxy.Addr())
	cfg := bridge.Config{Order: "per-key"}
	pubs := []bridge.Publisher{open(t, "pubsub://test-project/events", bridge.FormatEnmeshed, cfg), open(t, "pubsub://test-project/events", bridge.FormatEnmeshed, cfg)}
	ms := testMessages(600, 20)

	done := make(chan struct{})
	go func() {
		defer close(done)
		publishAll(t, pubs, ms, true)
	}()
	natstest.WaitFor(t, 30*time.Second, "messages before the cut", func() bool { return len(srv.Messages()) >= 100 })
	proxy.Cut()
	time.Sleep(time.Second) // the outage itself: its length is what is tested
	proxy.Restore()
	<-done

	byID, _, n := pubsubReceived(srv)
	for _, m := range ms {
		if _, ok := byID[m.Event.ID]; !ok {
			t.Errorf("event %s lost", m.Event.ID)
		}
	}
	t.Logf("%d events, %d messages (%d duplicates)", len(ms), n, n-len(byID))
}

// A missing topic leaves the publisher not ready, naming BRIDGE_URL; a
// publish to it fails (retryable, not a pause) and creates nothing.
func TestPubSubMissingTopic(t *testing.T) {
	srv := startPubSub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := open(t, "pubsub://test-project/absent", bridge.FormatEnmeshed, bridge.Config{})
	err := p.Ready(ctx)
	if !errors.Is(err, bridge.ErrMissingDestination) || !strings.Contains(err.Error(), "BRIDGE_URL") {
		t.Fatalf("ready with no topic: %v, want %v naming BRIDGE_URL", err, bridge.ErrMissingDestination)
	}
	err = p.Publish(ctx, testMessages(1, 1)[0])
	if !errors.Is(err, bridge.ErrMissingDestination) || consumers.IsPause(err) {
		t.Fatalf("publish to no topic: %v, want %v", err, bridge.ErrMissingDestination)
	}
	if _, err := srv.GServer.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: "projects/test-project/topics/absent"}); status.Code(err) != codes.NotFound {
		t.Fatalf("the topic was created: %v", err)
	}
}

// refuse is a pstest reactor failing every call with code while on.
type refuse struct {
	code codes.Code
	on   atomic.Bool
}

func (r *refuse) React(any) (bool, any, error) {
	if r.on.Load() {
		return true, nil, status.Error(r.code, "refused by the test")
	}
	return false, nil, nil
}

// Rejected credentials or a missing permission on publish pause the
// consumer; the same refusal of the topic check only warns; an
// unavailable service is retryable.
func TestPubSubRefused(t *testing.T) {
	for _, code := range []codes.Code{codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument} {
		t.Run(code.String(), func(t *testing.T) {
			publish, check := &refuse{code: code}, &refuse{code: code}
			startPubSub(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: publish},
				pstest.ServerReactorOption{FuncName: "GetTopic", Reactor: check})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			log, buf := natstest.BufferLogger()
			p, err := bridge.Open(ctx, bridge.Options{URL: mustURL(t, "pubsub://test-project/events"), Format: bridge.FormatEnmeshed, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			m := testMessages(1, 1)[0]
			check.on.Store(true)
			err = p.Ready(ctx)
			pause := code != codes.InvalidArgument
			if pause && (err != nil || !strings.Contains(buf.String(), "cannot check that the topic exists")) {
				t.Errorf("ready, check refused: %v, want nil and a warning; log:\n%s", err, buf)
			}
			if !pause && err == nil {
				t.Errorf("ready, check failed with %v: nil", code)
			}
			publish.on.Store(true)
			err = p.Publish(ctx, m)
			if consumers.IsPause(err) != pause || err == nil {
				t.Fatalf("publish refused with %v: %v; want pause %v", code, err, pause)
			}
		})
	}
}

// End to end through the runtime (bridge.New as cmd/bridge wires it):
// events on ENMESHED arrive as messages on the topic, body = data, the
// peer as ordering key, the namespace attribute; a publish refused for
// want of permission pauses the consumer on the server.
func TestPubSubBridgeEndToEnd(t *testing.T) {
	refused := &refuse{code: codes.PermissionDenied}
	srv := startPubSub(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: refused})
	m := newMesh(t)
	br, _ := startBridge(t, m, "BRIDGE_URL=pubsub://test-project/events", "BRIDGE_ORDER=per-key", "BRIDGE_DURABLE=bridge-pubsub-e2e")
	natstest.WaitFor(t, 10*time.Second, "the bridge ready", func() bool { return br.Ready(context.Background()) == nil })
	sent := map[string]router.Event{}
	for i := range 40 {
		e := m.event("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%d","isOwn":false,"createdBy":"did:e:peer%d"}`, i, i%3))
		sent[e.ID] = e
	}
	natstest.WaitFor(t, 20*time.Second, "every event on the topic", func() bool {
		byID, _, _ := pubsubReceived(srv)
		return len(byID) == len(sent)
	})
	byID, _, _ := pubsubReceived(srv)
	for id, e := range sent {
		got := byID[id]
		if got == nil || string(got.Data) != string(e.Data) || got.OrderingKey != router.OrderKey(e.Data) || got.Attributes["namespace"] != e.Namespace {
			t.Errorf("event %s: %+v", id, got)
		}
	}

	refused.on.Store(true)
	m.event("transport.messageReceived", `{"id":"MSG-refused"}`)
	natstest.WaitFor(t, 20*time.Second, "the consumer paused on the server", func() bool {
		cons, err := m.js.Consumer(context.Background(), streams.Events, br.Name())
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.Paused
	})
}
