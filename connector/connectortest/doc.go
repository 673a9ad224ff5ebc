// Package connectortest provides a test double of an enmeshed Connector,
// as net/http/httptest stands beside net/http: Server, a real HTTP server
// on loopback that serves the REST routes package connector calls (API
// key, envelopes, status codes, error codes, list filters), models what is
// on the Backbone apart from what the Connector has synced, and sends
// webhooks as the Connector's webhooks module does.
//
// It is test machinery: tests use it, and so do `eventmesh demo` and
// `eventmesh bench`; no product binary links it.
package connectortest
