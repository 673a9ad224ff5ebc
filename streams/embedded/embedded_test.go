package embedded_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

func TestPortTakenNamesNATSListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := natstest.Config(t)
	c.Listen = ln.Addr().String()
	_, err = embedded.Start(c, natstest.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "NATS_LISTEN") {
		t.Fatalf("err = %v, want an error naming NATS_LISTEN", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for v, change := range map[string]func(*embedded.Config){
		"NATS_SYNC":        func(c *embedded.Config) { c.Sync = "sometimes" },
		"NATS_LISTEN":      func(c *embedded.Config) { c.Listen = "nohost" },
		"NATS_MAX_STORE":   func(c *embedded.Config) { c.MaxStore = 1 },
		"NATS_MAX_PAYLOAD": func(c *embedded.Config) { c.MaxPayload = 1 << 30 },
	} {
		c := natstest.Config(t)
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("%s: err = %v", v, err)
		}
	}
	c := natstest.Config(t)
	c.Sync = "2m"
	if always, d, err := c.SyncPolicy(); always || d.Minutes() != 2 || err != nil {
		t.Errorf("2m: %v %v %v", always, d, err)
	}
}

// A message published before a shutdown is there after a restart on the
// same store, and the server's limits are those configured.
func TestRestartKeepsStore(t *testing.T) {
	c := natstest.Config(t)
	srv := natstest.StartWith(t, c)
	nc := natstest.Connect(t, srv.ClientURL())
	if nc.MaxPayload() != 1<<20 {
		t.Errorf("max payload = %d", nc.MaxPayload())
	}
	js := natstest.JetStream(t, nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstreamConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()

	srv = natstest.StartWith(t, c)
	js = natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	st, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil || string(m.Data) != "kept" {
		t.Fatalf("after restart: %v %q", err, m.Data)
	}
}
