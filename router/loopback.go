package router

import "net"

// LoopbackHost reports whether host, the host part of a listen address
// (INGEST_ADDR, ARCHIVE_ADDR, NATS_LISTEN, ...), is reachable only from this
// machine: "localhost" or a loopback IP. A listener that is not must ask
// for credentials.
//
// It lives here, though it is not about routing, because every package
// with a listener (producer, the consumers, the embedded server) depends on
// router, and it is as pure as the rest: it parses, it does not resolve.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
