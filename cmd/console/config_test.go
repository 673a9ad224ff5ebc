package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/streams/natstest"
)

// The console binary refuses an empty CONSOLE_ADDR, an address beyond
// loopback without CONSOLE_PASSWORD (exit 2, naming the variable), and an
// archive that is not there (naming ARCHIVE_DSN); --help lists its
// variables.
func TestStartErrors(t *testing.T) {
	srv := natstest.Start(t) // never the machine's server on the default address
	for _, tc := range []struct {
		env  []string
		code int
		want string
	}{
		{[]string{"CONSOLE_ADDR="}, 2, "CONSOLE_ADDR is empty"},
		{[]string{"CONSOLE_ADDR=0.0.0.0:1"}, 2, "CONSOLE_PASSWORD"},
		{[]string{"CONSOLE_ADDR=127.0.0.1:1", "DATA_DIR=" + t.TempDir(), "NATS_URL=" + srv.ClientURL()}, 1, "ARCHIVE_DSN"},
	} {
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		code := run(ctx, nil, tc.env, &out, &out)
		cancel()
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d naming %q\n%s", tc.env, code, tc.code, tc.want, &out)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 || !strings.Contains(out.String(), "CONSOLE_READONLY") {
		t.Errorf("--help: exit %d\n%s", code, &out)
	}
}
