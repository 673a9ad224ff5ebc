// Package router decides where events go: the event envelope and its NATS
// headers, the subject scheme, trigger validation, event identity and the
// catalogue of known Connector events. It is pure code: no network, no disk,
// no clock it does not take as an argument. Every other package depends on it;
// it depends on nothing of ours.
package router
