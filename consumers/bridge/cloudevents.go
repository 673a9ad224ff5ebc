package bridge

import "github.com/eventmesh/eventmesh/router"

// cloudEventAttributes returns e's CloudEvents context attributes for a
// binding's binary content mode, each named prefix + attribute ("ce-" for
// Pub/Sub, "ce_" for Kafka): specversion, id, type (the namespace), source
// and time. The traceparent and x-correlation-id the event carries follow
// under their own names, as the webhook's binary mode sends them. The
// datacontenttype is left to the caller: each binding maps it to a content
// type of its own.
func cloudEventAttributes(e router.Event, prefix string) []Field {
	source := e.Source
	if source == "" {
		// ce-source is required by CloudEvents; events from the producer
		// always have one.
		source = router.DefaultSource
	}
	fs := make([]Field, 0, 7)
	fs = append(fs,
		Field{prefix + "specversion", router.SpecVersion},
		Field{prefix + "id", e.ID},
		Field{prefix + "type", e.Namespace},
		Field{prefix + "source", source})
	if !e.Time.IsZero() {
		fs = append(fs, Field{prefix + "time", e.Time.UTC().Format(router.TimeFormat)})
	}
	if e.CorrelationID != "" {
		fs = append(fs, Field{router.HeaderCorrelationID, e.CorrelationID})
	}
	if e.Traceparent != "" {
		fs = append(fs, Field{router.HeaderTraceparent, e.Traceparent})
	}
	return fs
}

// body returns m's body: the one the runtime set, else Body of its event.
func (m Message) body() []byte {
	if m.Body != nil {
		return m.Body
	}
	return Body(m.Event)
}
