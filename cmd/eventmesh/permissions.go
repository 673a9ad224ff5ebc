package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/eventmesh/eventmesh/cmd/internal/permissions"
	"github.com/eventmesh/eventmesh/router"
)

// runPermissions is `eventmesh permissions BINARY [--durable D] [--prefix P]`:
// the least NATS permissions the binary needs, as a nats-server
// permissions block (the lists a test runs every binary under).
func runPermissions(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eventmesh permissions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	durable := fs.String("durable", "", "the webhook's or the bridge's durable name (WEBHOOK_DURABLE or the derived webhook-xxxxxxxx; BRIDGE_DURABLE or the derived bridge-xxxxxxxx)")
	prefix := fs.String("prefix", router.DefaultPrefix, "SUBJECT_PREFIX")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventmesh permissions producer|webhook|autoaccept|archiver|bridge|status [--durable D] [--prefix P]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	binary := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	s, err := router.NewSubjects(*prefix)
	if err != nil {
		fmt.Fprintln(stderr, "eventmesh permissions:", err)
		return 2
	}
	p, err := permissions.For(binary, s, *durable)
	if err != nil {
		fmt.Fprintln(stderr, "eventmesh permissions:", err)
		return 2
	}
	fmt.Fprint(stdout, p.ServerConfig())
	return 0
}
