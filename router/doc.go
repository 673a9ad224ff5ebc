// Package router decides where events go: the event envelope and its NATS
// headers, the subject scheme, trigger validation, event identity and the
// catalogue of known Connector events. It is pure code: no network, no disk,
// no clock it does not take as an argument. Every other package depends on it;
// it depends on nothing of ours. So it also holds the two small pure helpers
// that packages on every side of the mesh share: LoopbackHost (may a
// listener go without credentials?) and Truncate (cut a text on a rune
// boundary).
package router
