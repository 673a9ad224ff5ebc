package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The real binary against RabbitMQ (EVENTMESH_TEST_AMQP): while
// BRIDGE_AMQP_EXCHANGE is missing, /readyz answers 503 naming it, the log
// names it without the URL's password, and nothing is fetched; once the
// broker's owner creates the exchange (and a queue bound to it), /readyz
// turns 200 within a few checks and the waiting event arrives; SIGTERM
// exits 0.
func TestReadyzFollowsTheBroker(t *testing.T) {
	raw := os.Getenv("EVENTMESH_TEST_AMQP")
	if raw == "" {
		t.Skip("EVENTMESH_TEST_AMQP is not set (e.g. amqp://guest:guest@127.0.0.1:5672/)")
	}
	bins, err := harness.Build(filepath.Join(t.TempDir(), "bin"), "bridge")
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	subjects := router.MustSubjects(router.DefaultPrefix)
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(raw)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_AMQP: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	name := "eventmesh-readyz-" + router.RandomKey()[:12]
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(name, false, false, false)
			ch.ExchangeDelete(name, false, false)
		}
	})

	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_AMQP: %v", err)
	}
	out := &natstest.LogBuffer{}
	cmd := exec.Command(bins["bridge"])
	cmd.Env = []string{"NATS_URL=" + srv.ClientURL(), "HTTP_ADDR=" + addr, "BRIDGE_URL=" + raw, "BRIDGE_AMQP_EXCHANGE=" + name,
		"BRIDGE_START=all", "BRIDGE_DURABLE=" + name}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	natstest.WaitFor(t, 20*time.Second, "/readyz 503 naming BRIDGE_AMQP_EXCHANGE, and the log", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "BRIDGE_AMQP_EXCHANGE") &&
			strings.Contains(out.String(), "BRIDGE_AMQP_EXCHANGE")
	})
	e := router.Event{ID: router.HashID("test", "transport.messageReceived", router.RandomKey()), Namespace: "transport.messageReceived",
		Source: "test", Time: time.Now().UTC(), Origin: router.OriginWebhook, Data: []byte(`{"id":"MSGreadyz"}`)}
	if _, err := js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(name, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(name, "#", name, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 4*bridge.RecheckEvery, "/readyz 200 once the exchange exists", func() bool {
		code, _ := readyz()
		return code == http.StatusOK
	})
	select {
	case d := <-deliveries:
		if d.MessageId != e.ID || string(d.Body) != string(e.Data) {
			t.Errorf("received %s %s, want %s %s", d.MessageId, d.Body, e.ID, e.Data)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the event never arrived\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, out)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if u.User != nil && strings.Contains(out.String(), u.User.String()+"@") {
		t.Errorf("the log shows BRIDGE_URL's credentials:\n%s", out)
	}
}
