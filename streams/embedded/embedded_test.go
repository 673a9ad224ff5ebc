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

	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
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

// NATS_LISTEN beyond loopback needs client authentication: a user, a
// token, or a configuration file that defines some. Loopback needs none.
func TestListenBeyondLoopbackNeedsAuth(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.conf")
	os.WriteFile(authFile, []byte("authorization { users = [ {user: a, password: b} ] }\n"), 0o600)
	openFile := filepath.Join(t.TempDir(), "open.conf")
	os.WriteFile(openFile, []byte("server_name: open\n"), 0o600)
	user := embedded.Auth{User: "mesh", Password: "s3cret"}
	for _, tc := range []struct {
		listen string
		auth   embedded.Auth
		file   string
		ok     bool
	}{
		{"127.0.0.1:4222", embedded.Auth{}, "", true},
		{"localhost:4222", embedded.Auth{}, "", true},
		{"[::1]:4222", embedded.Auth{}, "", true},
		{"127.0.0.2:4222", embedded.Auth{}, "", true},
		{"0.0.0.0:4222", embedded.Auth{}, "", false},
		{":4222", embedded.Auth{}, "", false},
		{"[::]:4222", embedded.Auth{}, "", false},
		{"192.0.2.10:4222", embedded.Auth{}, "", false},
		{"nats.example:4222", embedded.Auth{}, "", false},
		{"0.0.0.0:4222", embedded.Auth{}, openFile, false},
		{"0.0.0.0:4222", user, "", true},
		{":4222", embedded.Auth{Token: "t0ken"}, "", true},
		{"[::]:4222", embedded.Auth{}, authFile, true},
	} {
		c := natstest.Config(t)
		c.Listen, c.Auth, c.ServerConfig = tc.listen, tc.auth, tc.file
		err := c.Validate()
		if tc.ok && err != nil || !tc.ok && (err == nil || !strings.Contains(err.Error(), "NATS_LISTEN")) {
			t.Errorf("%s %+v %q: err = %v, want ok=%v (an error naming NATS_LISTEN)", tc.listen, tc.auth, tc.file, err, tc.ok)
		}
	}
	for name, a := range map[string]embedded.Auth{
		"NATS_PASSWORD": {User: "mesh"},
		"NATS_USER":     {Password: "s3cret"},
		"NATS_TOKEN":    {User: "mesh", Password: "p", Token: "t"},
	} {
		c := natstest.Config(t)
		c.Auth = a
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%+v: err = %v, want one naming %s", a, err, name)
		}
	}
	c := natstest.Config(t)
	c.ServerConfig = filepath.Join(t.TempDir(), "missing.conf")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "NATS_SERVER_CONFIG") {
		t.Errorf("missing file: err = %v", err)
	}
}

// With a user, a token or a configuration file, the server refuses an
// anonymous client over TCP and takes one with the credentials, in
// process and over TCP; JetStream works for it.
func TestClientAuthentication(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte(`
port: 1 # NATS_LISTEN wins
accounts {
  MESH {
    jetstream: enabled
    users = [ {user: mesh, password: m3sh}, {user: reader, password: r3ad} ]
  }
}
`), 0o600)
	for _, tc := range []struct {
		name string
		auth embedded.Auth
		file string
		opt  nats.Option
	}{
		{"user", embedded.Auth{User: "mesh", Password: "s3cret"}, "", nats.UserInfo("mesh", "s3cret")},
		{"token", embedded.Auth{Token: "t0ken-t0ken"}, "", nats.Token("t0ken-t0ken")},
		{"file", embedded.Auth{}, conf, nats.UserInfo("reader", "r3ad")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := natstest.Config(t)
			c.Auth, c.ServerConfig = tc.auth, tc.file
			logger, log := natstest.BufferLogger()
			srv, err := embedded.Start(c, logger)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			if want := "auth=" + map[string]string{"user": "user", "token": "token", "file": "NATS_SERVER_CONFIG"}[tc.name]; !strings.Contains(log.String(), want) {
				t.Errorf("the log does not say %s:\n%s", want, log)
			}
			if tc.file != "" && !strings.Contains(log.String(), "listen (NATS_LISTEN)") {
				t.Errorf("the file's port replaced by NATS_LISTEN without a warning:\n%s", log)
			}
			if nc, err := nats.Connect(srv.ClientURL()); err == nil {
				nc.Close()
				t.Fatal("an anonymous client connected")
			} else if !streams.AuthError(err) {
				t.Fatalf("anonymous client: %v, want an authorization violation", err)
			}
			if _, err := srv.Connect(); err == nil || !strings.Contains(err.Error(), "NATS_") {
				t.Errorf("anonymous in-process connection: %v, want a refusal naming the variables", err)
			}
			nc, err := nats.Connect(srv.ClientURL(), tc.opt)
			if err != nil {
				t.Fatalf("with credentials: %v", err)
			}
			defer nc.Close()
			js := natstest.JetStream(t, nc)
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstreamConfig()); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "t.x", []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if tc.file != "" {
				// The file's other user, in process: same account, same stream.
				inproc, err := srv.Connect(nats.UserInfo("mesh", "m3sh"))
				if err != nil {
					t.Fatal(err)
				}
				defer inproc.Close()
				st, err := natstest.JetStream(t, inproc).Stream(ctx, "T")
				if err != nil || st.CachedInfo().State.Msgs != 1 {
					t.Fatalf("stream from the other user: %v", err)
				}
			}
		})
	}
}
