package embedded_test

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
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

// With NATS_STORE_KEY the store files hold no event in plaintext; the
// same server without a key does (so the check can fail), and a restart
// with the key reads the event back.
func TestEncryptionAtRest(t *testing.T) {
	const secret = "PLAINTEXT-MARKER-jane.doe@example.org"
	for _, tc := range []struct {
		name      string
		key       string
		plaintext bool
	}{
		{"encrypted", "0123456789abcdef0123456789abcdef-test-key", false},
		{"unencrypted", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := natstest.Config(t)
			c.StoreKey = tc.key
			srv := natstest.StartWith(t, c)
			nc := natstest.Connect(t, srv.ClientURL())
			js := natstest.JetStream(t, nc)
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstreamConfig()); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "t.x", []byte(`{"email":"`+secret+`"}`)); err != nil {
				t.Fatal(err)
			}
			nc.Close()
			srv.Shutdown()
			found := false
			filepath.WalkDir(c.DataDir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(secret)) {
						found = true
					}
				}
				return nil
			})
			if found != tc.plaintext {
				t.Fatalf("plaintext in the store files: %v, want %v", found, tc.plaintext)
			}
			srv = natstest.StartWith(t, c)
			st, err := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL())).Stream(ctx, "T")
			if err != nil {
				t.Fatal(err)
			}
			m, err := st.GetMsg(ctx, 1)
			if err != nil || !bytes.Contains(m.Data, []byte(secret)) {
				t.Fatalf("after restart: %v %q", err, m.Data)
			}
		})
	}
}
