package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpTestURL is the broker of EVENTMESH_TEST_AMQP; the test skips without it.
func amqpTestURL(t testing.TB) *url.URL {
	t.Helper()
	raw := os.Getenv("EVENTMESH_TEST_AMQP")
	if raw == "" {
		t.Skip("EVENTMESH_TEST_AMQP is not set (e.g. amqp://guest:guest@127.0.0.1:5672/)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_AMQP: %v", err)
	}
	return u
}

// amqpBroker is the test's own side of the broker: it declares the
// topology the bridge never does, and removes it with the test.
type amqpBroker struct {
	t    testing.TB
	url  *url.URL
	conn *amqp.Connection
}

func newAMQPBroker(t testing.TB) *amqpBroker {
	t.Helper()
	u := amqpTestURL(t)
	conn, err := amqp.Dial(u.String())
	if err != nil {
		t.Fatalf("connect to EVENTMESH_TEST_AMQP: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &amqpBroker{t: t, url: u, conn: conn}
}

// name returns a name of the test's own.
func (b *amqpBroker) name(kind string) string {
	var r [4]byte
	rand.Read(r[:])
	return "eventmesh-test-" + kind + "-" + hex.EncodeToString(r[:])
}

// do runs f on a fresh channel (a failed declare closes its channel).
func (b *amqpBroker) do(f func(ch *amqp.Channel) error) error {
	ch, err := b.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}

func (b *amqpBroker) must(what string, f func(ch *amqp.Channel) error) {
	b.t.Helper()
	if err := b.do(f); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// exchange declares a durable exchange of kind, deleted with the test.
func (b *amqpBroker) exchange(kind string) string {
	b.t.Helper()
	name := b.name("x")
	b.must("declare exchange", func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(name, kind, true, false, false, false, nil)
	})
	b.t.Cleanup(func() { b.do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(name, false, false) }) })
	return name
}

// queue declares a classic durable queue (named name, or a fresh name when
// empty) bound to exchange with the binding keys, deleted with the test.
func (b *amqpBroker) queue(name string, args amqp.Table, exchange string, keys ...string) string {
	b.t.Helper()
	if name == "" {
		name = b.name("q")
	}
	b.must("declare queue", func(ch *amqp.Channel) error {
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			return err
		}
		for _, k := range keys {
			if err := ch.QueueBind(name, k, exchange, false, nil); err != nil {
				return err
			}
		}
		return nil
	})
	b.t.Cleanup(func() {
		b.do(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err })
	})
	return name
}

// consume delivers the queue's messages on the returned channel until the
// test ends.
func (b *amqpBroker) consume(queue string) <-chan amqp.Delivery {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { ch.Close() })
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return ds
}

// receive takes n messages from ds, failing the test when they do not come
// within timeout.
func amqpReceive(t testing.TB, ds <-chan amqp.Delivery, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	got := make([]amqp.Delivery, 0, n)
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case d := <-ds:
			got = append(got, d)
		case <-deadline:
			t.Fatalf("received %d of %d messages within %s", len(got), n, timeout)
		}
	}
	return got
}

// openTestAMQP opens the bridge's publisher on u.
func openTestAMQP(t testing.TB, u *url.URL, c bridge.AMQPConfig, f bridge.Format, log *slog.Logger) bridge.Publisher {
	t.Helper()
	if c.RoutingKey == "" {
		c.RoutingKey = router.TriggerPlaceholder
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := bridge.Open(ctx, bridge.Options{URL: u, Format: f, Config: bridge.Config{AMQP: c}, Durable: "bridge-test", Log: log})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testEvent is the i-th event of a test, with every header the metadata
// can carry.
func amqpEvent(i int, namespace string) router.Event {
	var id [16]byte
	rand.Read(id[:])
	return router.Event{
		ID:            hex.EncodeToString(id[:]),
		Namespace:     namespace,
		Source:        "enmeshed-connector",
		Time:          time.Date(2026, 12, 2, 8, 0, 0, 123456789, time.UTC).Add(time.Duration(i) * time.Second),
		Origin:        router.OriginWebhook,
		Data:          []byte(fmt.Sprintf(`{"id":"MSG%d", "n": %d}`, i, i)),
		CorrelationID: fmt.Sprintf("corr-%d", i),
		Traceparent:   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
}

func amqpMessage(e router.Event) bridge.Message {
	return bridge.Message{Event: e, Body: bridge.Body(e)}
}

func amqpCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// retryable reports whether the runtime would retry err by its schedule.
func amqpRetryable(err error) bool {
	return err != nil && !consumers.IsPause(err) && !consumers.IsPermanent(err) &&
		!errors.Is(err, bridge.ErrUnroutable) && !errors.Is(err, bridge.ErrMissingDestination)
}

func TestAMQPDeliversEveryEventAsAMessage(t *testing.T) {
	for _, format := range []bridge.Format{bridge.FormatEnmeshed, bridge.FormatCloudEvents} {
		t.Run(string(format), func(t *testing.T) {
			b := newAMQPBroker(t)
			x := b.exchange("topic")
			q := b.queue("", nil, x, "transport.#", "consumption.#")
			ds := b.consume(q)
			p := openTestAMQP(t, b.url, bridge.AMQPConfig{Exchange: x}, format, nil)
			if err := p.Ready(amqpCtx(t)); err != nil {
				t.Fatalf("Ready: %v", err)
			}

			const n = 40
			namespaces := []string{"transport.messageReceived", "consumption.incomingRequestReceived"}
			sent := map[string]router.Event{}
			for i := range n {
				e := amqpEvent(i, namespaces[i%2])
				if i == 7 {
					e.Data = nil // stored without data: {} as the Connector sends
				}
				sent[e.ID] = e
				if err := p.Publish(amqpCtx(t), amqpMessage(e)); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			for _, d := range amqpReceive(t, ds, n, 10*time.Second) {
				e, ok := sent[d.MessageId]
				if !ok {
					t.Fatalf("message_id %q is no event sent (or came twice)", d.MessageId)
				}
				delete(sent, d.MessageId)
				if !bytes.Equal(d.Body, bridge.Body(e)) {
					t.Errorf("event %s: body %q, want %q", e.ID, d.Body, bridge.Body(e))
				}
				if d.RoutingKey != e.Namespace || d.Exchange != x {
					t.Errorf("event %s: exchange %q routing key %q, want %q %q", e.ID, d.Exchange, d.RoutingKey, x, e.Namespace)
				}
				if d.DeliveryMode != amqp.Persistent {
					t.Errorf("event %s: delivery mode %d, want persistent", e.ID, d.DeliveryMode)
				}
				if d.ContentType != "application/json" {
					t.Errorf("event %s: content_type %q", e.ID, d.ContentType)
				}
				if !d.Timestamp.Equal(e.Time.Truncate(time.Second)) {
					t.Errorf("event %s: timestamp %v, want %v", e.ID, d.Timestamp, e.Time)
				}
				want := amqpWantHeaders(e, format)
				if len(d.Headers) != len(want) {
					t.Errorf("event %s: headers %v, want %v", e.ID, d.Headers, want)
				}
				for k, v := range want {
					if d.Headers[k] != v {
						t.Errorf("event %s: header %s = %v, want %q", e.ID, k, d.Headers[k], v)
					}
				}
			}
		})
	}
}

// amqpWantHeaders is what a consumer finds in the headers of e's message.
func amqpWantHeaders(e router.Event, f bridge.Format) map[string]string {
	time := e.Time.UTC().Format(router.TimeFormat)
	if f == bridge.FormatCloudEvents {
		return map[string]string{
			"cloudEvents_id": e.ID, "cloudEvents_type": e.Namespace, "cloudEvents_source": e.Source,
			"cloudEvents_time": time, "cloudEvents_specversion": "1.0",
			"x-correlation-id": e.CorrelationID, "traceparent": e.Traceparent,
		}
	}
	return map[string]string{
		"ce-id": e.ID, "ce-type": e.Namespace, "ce-source": e.Source, "ce-time": time, "ce-specversion": "1.0",
		"eventmesh-origin": string(e.Origin), "x-correlation-id": e.CorrelationID, "traceparent": e.Traceparent,
	}
}

func TestAMQPDefaultExchangeToTheQueueNamedByTheRoutingKey(t *testing.T) {
	b := newAMQPBroker(t)
	prefix := b.name("q")
	q := b.queue(prefix+".transport.messageReceived", nil, "")
	ds := b.consume(q)
	p := openTestAMQP(t, b.url, bridge.AMQPConfig{RoutingKey: prefix + ".{{trigger}}"}, bridge.FormatEnmeshed, nil)
	if err := p.Ready(amqpCtx(t)); err != nil {
		t.Fatalf("Ready on the default exchange: %v", err)
	}
	e := amqpEvent(1, "transport.messageReceived")
	if err := p.Publish(amqpCtx(t), amqpMessage(e)); err != nil {
		t.Fatal(err)
	}
	d := amqpReceive(t, ds, 1, 10*time.Second)[0]
	if d.MessageId != e.ID || !bytes.Equal(d.Body, e.Data) || d.RoutingKey != q {
		t.Fatalf("got message %s with key %q body %q", d.MessageId, d.RoutingKey, d.Body)
	}
}

func TestAMQPConnectionCutAndRestoredLosesNothing(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.exchange("direct")
	q := b.queue("", nil, x, "transport.messageReceived")
	ds := b.consume(q)
	proxy := bridgetest.NewProxy(t, b.url.Host)
	u := *b.url
	u.Host = proxy.Addr()
	p := openTestAMQP(t, &u, bridge.AMQPConfig{Exchange: x}, bridge.FormatEnmeshed, nil)

	const n, workers = 600, 8
	var confirmed, failed atomic.Int64
	cutNow, firstFailure := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wrong atomic.Value
	events := make(chan router.Event, n)
	for i := range n {
		events <- amqpEvent(i, "transport.messageReceived")
	}
	close(events)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for e := range events {
				for {
					err := p.Publish(amqpCtx(t), amqpMessage(e))
					if err == nil {
						if confirmed.Add(1) == n/3 {
							close(cutNow)
						}
						break
					}
					if !amqpRetryable(err) {
						wrong.Store(err)
					}
					failed.Add(1)
					once.Do(func() { close(firstFailure) })
					time.Sleep(20 * time.Millisecond) // the runtime's retry schedule, shortened
				}
			}
		})
	}
	<-cutNow
	proxy.Cut()
	<-firstFailure
	proxy.Restore()
	wg.Wait()
	if err := wrong.Load(); err != nil {
		t.Fatalf("an error during the cut was not retryable: %v", err)
	}
	if failed.Load() == 0 {
		t.Fatal("no publish failed: the cut did not happen mid-run")
	}
	seen := map[string]int{}
	for _, d := range amqpReceive(t, ds, n, 30*time.Second) {
		seen[d.MessageId]++
	}
	// An event whose confirm the cut lost was sent again (at least once),
	// so duplicates may be among the first n: take more until every event
	// is there.
	for len(seen) < n {
		d := amqpReceive(t, ds, 1, 10*time.Second)[0]
		seen[d.MessageId]++
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d events, %d failed attempts during the cut, all %d received, %d duplicates", n, failed.Load(), len(seen), dups)
}

func TestAMQPNegativeConfirmIsRetried(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.exchange("direct")
	b.queue("", amqp.Table{"x-overflow": "reject-publish", "x-max-length": int32(1)}, x, "transport.messageReceived")
	p := openTestAMQP(t, b.url, bridge.AMQPConfig{Exchange: x}, bridge.FormatEnmeshed, nil)
	if err := p.Publish(amqpCtx(t), amqpMessage(amqpEvent(1, "transport.messageReceived"))); err != nil {
		t.Fatalf("first publish into the empty queue: %v", err)
	}
	err := p.Publish(amqpCtx(t), amqpMessage(amqpEvent(2, "transport.messageReceived")))
	if !errors.Is(err, bridge.ErrNegativeConfirm) || !amqpRetryable(err) {
		t.Fatalf("publish into the full queue: %v, want a retryable negative confirm", err)
	}
}

func TestAMQPUnroutable(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.exchange("direct") // no queue bound
	p := openTestAMQP(t, b.url, bridge.AMQPConfig{Exchange: x}, bridge.FormatEnmeshed, nil)
	for i := range 3 {
		err := p.Publish(amqpCtx(t), amqpMessage(amqpEvent(i, "transport.messageReceived")))
		if !errors.Is(err, bridge.ErrUnroutable) {
			t.Fatalf("publish %d with no queue bound: %v, want bridge.ErrUnroutable", i, err)
		}
	}
	// The channel stays usable: once a queue is bound, the same publisher
	// delivers.
	q := b.queue("", nil, x, "transport.messageReceived")
	ds := b.consume(q)
	if err := p.Publish(amqpCtx(t), amqpMessage(amqpEvent(9, "transport.messageReceived"))); err != nil {
		t.Fatalf("publish after binding a queue: %v", err)
	}
	amqpReceive(t, ds, 1, 10*time.Second)
}

func TestAMQPRejectedCredentialsPause(t *testing.T) {
	b := newAMQPBroker(t)
	u := *b.url
	secret := "wrong-" + b.name("password")
	u.User = url.UserPassword(b.url.User.Username(), secret)
	var logs bytes.Buffer
	p := openTestAMQP(t, &u, bridge.AMQPConfig{}, bridge.FormatEnmeshed, slog.New(slog.NewTextHandler(&logs, nil)))
	err := p.Publish(amqpCtx(t), amqpMessage(amqpEvent(1, "transport.messageReceived")))
	if !consumers.IsPause(err) {
		t.Fatalf("publish with a wrong password: %v, want a pause", err)
	}
	if p.Ready(amqpCtx(t)) == nil {
		t.Fatal("Ready with a wrong password: nil")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
		t.Fatalf("the password shows in the error or the log:\n%v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "cannot connect") {
		t.Fatalf("log does not say the connection failed:\n%s", logs.String())
	}
}

func TestAMQPMissingExchange(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.name("x") // not declared yet
	p := openTestAMQP(t, b.url, bridge.AMQPConfig{Exchange: x}, bridge.FormatEnmeshed, nil)
	err := p.Ready(amqpCtx(t))
	if !errors.Is(err, bridge.ErrMissingDestination) || !strings.Contains(err.Error(), "BRIDGE_AMQP_EXCHANGE") {
		t.Fatalf("Ready with the exchange missing: %v, want bridge.ErrMissingDestination naming BRIDGE_AMQP_EXCHANGE", err)
	}
	err = p.Publish(amqpCtx(t), amqpMessage(amqpEvent(1, "transport.messageReceived")))
	if !errors.Is(err, bridge.ErrMissingDestination) || !strings.Contains(err.Error(), "BRIDGE_AMQP_EXCHANGE") {
		t.Fatalf("publish to the missing exchange: %v, want bridge.ErrMissingDestination naming BRIDGE_AMQP_EXCHANGE", err)
	}

	// The owner creates it: ready, and the publisher (its channel closed by
	// the refused publish, set up again) delivers.
	b.must("declare exchange", func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(x, "direct", true, false, false, false, nil)
	})
	t.Cleanup(func() { b.do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) }) })
	ds := b.consume(b.queue("", nil, x, "transport.messageReceived"))
	if err := p.Ready(amqpCtx(t)); err != nil {
		t.Fatalf("Ready once the exchange exists: %v", err)
	}
	natstest.WaitFor(t, 10*time.Second, "a publish succeeds once the exchange exists", func() bool {
		return p.Publish(amqpCtx(t), amqpMessage(amqpEvent(2, "transport.messageReceived"))) == nil
	})
	amqpReceive(t, ds, 1, 10*time.Second)
}

func TestAMQPConcurrentPublishersAllConfirmed(t *testing.T) {
	b := newAMQPBroker(t)
	x := b.exchange("direct")
	ds := b.consume(b.queue("", nil, x, "transport.messageReceived"))
	p := openTestAMQP(t, b.url, bridge.AMQPConfig{Exchange: x}, bridge.FormatEnmeshed, nil)
	const goroutines, each = 16, 50
	errs := make(chan error, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				errs <- p.Publish(amqpCtx(t), amqpMessage(amqpEvent(g*each+i, "transport.messageReceived")))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent publish failed: %v", err)
		}
	}
	seen := map[string]bool{}
	for _, d := range amqpReceive(t, ds, goroutines*each, 20*time.Second) {
		seen[d.MessageId] = true
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct messages, want %d", len(seen), goroutines*each)
	}
}

// TestAMQPMissingPermissionPauses uses a user of its own without write
// permission; it needs rabbitmqctl (the broker's own machine) and skips
// without it.
func TestAMQPMissingPermissionPauses(t *testing.T) {
	b := newAMQPBroker(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Skip("rabbitmqctl is not on PATH")
	}
	user, password := b.name("user"), b.name("pw")
	ctl := func(args ...string) error {
		out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("rabbitmqctl %s: %v: %s", args[0], err, out)
		}
		return nil
	}
	if err := ctl("add_user", user, password); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { ctl("delete_user", user) })
	vhost := strings.TrimPrefix(b.url.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	x := b.exchange("direct")
	b.queue("", nil, x, "transport.messageReceived")
	// Configure and read everything, write nothing.
	if err := ctl("set_permissions", "-p", vhost, user, ".*", "^$", ".*"); err != nil {
		t.Fatal(err)
	}
	u := *b.url
	u.User = url.UserPassword(user, password)
	p := openTestAMQP(t, &u, bridge.AMQPConfig{Exchange: x}, bridge.FormatEnmeshed, nil)
	if err := p.Ready(amqpCtx(t)); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	err := p.Publish(amqpCtx(t), amqpMessage(amqpEvent(1, "transport.messageReceived")))
	if !consumers.IsPause(err) {
		t.Fatalf("publish without write permission: %v, want a pause", err)
	}
}
