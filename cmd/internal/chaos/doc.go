// Package chaos holds only tests: the chaos suite. Each scenario runs the
// real producer, webhook and archiver binaries (built once from cmd/) as
// separate processes against a nats-server with NATS_SYNC=always (the
// product default: fsync on every write), posts Connector-shaped events to
// ingest while something breaks — consumers SIGKILLed, the NATS server
// restarted, the receiver failing or down, a poison event, the stream
// leader of a 3-node cluster killed, one of two processes of a durable
// killed, the stream full, the bridge SIGKILLed while publishing into each
// broker — and then accounts for every event ingest
// acknowledged (cmd/internal/harness). Each asserts that none is lost:
// every one is delivered to the receiver or dead-lettered with a reason.
// Duplicates (at-least-once delivery) are reported, not failed.
//
//	go test ./cmd/internal/chaos                          # the short run, about a minute
//	go test ./cmd/internal/chaos -v -run TestNATSRestart  # one scenario, with its report
//	go test ./cmd/internal/chaos -v -soak -timeout 60m    # the soak (or EVENTMESH_SOAK=1)
//
// The soak posts tens of thousands of events per scenario and repeats its
// faults (kills, restarts, outages) throughout. Neither run needs Docker
// or anything besides the Go toolchain.
package chaos
