package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The console refuses to listen beyond loopback without CONSOLE_PASSWORD
// (exit 2 naming it), and a taken CONSOLE_ADDR stops eventmesh with an
// error naming the variable.
func TestConsoleRefusals(t *testing.T) {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		env  string
		code int
		want string
	}{
		{"CONSOLE_ADDR=0.0.0.0:" + port, 2, "CONSOLE_PASSWORD"},
		{"CONSOLE_ADDR=:" + port, 2, "CONSOLE_PASSWORD"},
		{"CONSOLE_ADDR=" + taken.Addr().String(), 1, "CONSOLE_ADDR " + taken.Addr().String()},
	} {
		var out bytes.Buffer
		env := []string{"DATA_DIR=" + t.TempDir(), "NATS_LISTEN=" + freeAddr(t), "INGEST_ADDR=" + freeAddr(t), "ARCHIVE_ADDR=", tc.env}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code := run(ctx, nil, env, &out, &out)
		cancel()
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d, want %d naming %q\n%s", tc.env, code, tc.code, tc.want, &out)
		}
	}
}

// eventmesh serves the console on CONSOLE_ADDR, reading the archive in
// process (ARCHIVE_ADDR empty), and warns that loopback needs no login.
func TestConsoleServedByEventmesh(t *testing.T) {
	addr := freeAddr(t)
	p := startMesh(t, t.TempDir(), "CONSOLE_ADDR="+addr, "ARCHIVE_ADDR=")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("console: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	resp, err = http.Get("http://" + addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("events page without ARCHIVE_ADDR: %d", resp.StatusCode)
	}
	p.stop(t)
	if !strings.Contains(p.log.String(), "the console needs no login") {
		t.Errorf("no warning about the console without login:\n%s", p.log)
	}
}
