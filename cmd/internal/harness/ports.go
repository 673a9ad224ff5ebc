package harness

import (
	"errors"
	"net"
	"sync"
)

// DefaultAddrs are the loopback addresses the binaries use when left to
// their defaults: NATS_LISTEN and NATS_URL (4222), INGEST_ADDR (8080),
// ARCHIVE_ADDR (8081), CONSOLE_ADDR (8088) and HTTP_ADDR (9090). A test must never use them:
// the mesh of the README's "Try it" (or any other program) may hold them.
var DefaultAddrs = []string{"127.0.0.1:4222", "127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8088", "127.0.0.1:9090"}

// HoldDefaultAddrs listens on each of DefaultAddrs that is free, closing
// every connection at once, until release is called. A TestMain holds them
// so that a test leaving a listener (or the server an admin command
// connects to) at its default fails every time, as it would on a machine
// where the mesh is running, instead of passing while the port is free.
// An address something else holds already is left to it: held all the same.
func HoldDefaultAddrs() (release func()) {
	var (
		lns []net.Listener
		wg  sync.WaitGroup
	)
	for _, addr := range DefaultAddrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err == nil {
					c.Close()
				}
			}
		}()
	}
	return func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	}
}
