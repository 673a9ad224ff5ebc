package router

// The NATS header names the mesh reads and writes, all in one place. NATS
// headers are case-sensitive: use these exactly.

// Header names of an event message: the CloudEvents NATS binding in binary
// content mode plus ours.
const (
	HeaderSpecVersion     = "ce-specversion"
	HeaderID              = "ce-id"
	HeaderType            = "ce-type"
	HeaderSource          = "ce-source"
	HeaderTime            = "ce-time"
	HeaderDataContentType = "ce-datacontenttype"
	HeaderMsgID           = "Nats-Msg-Id"
	HeaderOrigin          = "eventmesh-origin"
	HeaderCorrelationID   = "x-correlation-id"
	HeaderTraceparent     = "traceparent"
)

// Headers of a dead-letter copy in ENMESHED_DLQ (besides the event's own
// ce-* headers, which it keeps).
const (
	HeaderConsumer  = "eventmesh-consumer"   // durable name of the consumer that gave up
	HeaderReason    = "eventmesh-reason"     // why, for an operator
	HeaderAttempts  = "eventmesh-attempts"   // deliveries made
	HeaderSubject   = "eventmesh-subject"    // the event's subject in ENMESHED
	HeaderStreamSeq = "eventmesh-stream-seq" // the event's sequence in ENMESHED
	// HeaderDeadAt says when the consumer gave up (RFC 3339 with
	// nanoseconds, UTC).
	HeaderDeadAt = "eventmesh-dead-at"
)

// HeaderPinID is set by the server on a message of a pinned priority group
// (a durable in per-key order mode): the pin of the process it is
// delivered to.
const HeaderPinID = "Nats-Pin-Id"
