package bridge

import (
	"fmt"
	"strings"

	"github.com/eventmesh/eventmesh/router"
)

// Format is BRIDGE_FORMAT: what goes on the wire.
type Format string

const (
	// FormatEnmeshed is exactly what the Connector's messageBrokerPublisher
	// sends (body = data, the namespace where the Connector puts it), with
	// eventmesh's metadata beside the body where the protocol has room.
	FormatEnmeshed Format = "enmeshed"
	// FormatCloudEvents is the binary mode of the protocol's CloudEvents
	// binding where one exists.
	FormatCloudEvents Format = "cloudevents"
)

// UnmarshalText checks the value (caarlos0/env calls it).
func (f *Format) UnmarshalText(b []byte) error {
	switch v := Format(strings.TrimSpace(string(b))); v {
	case FormatEnmeshed, FormatCloudEvents:
		*f = v
		return nil
	}
	return fmt.Errorf("want enmeshed or cloudevents, not %q", b)
}

// Field is one metadata name and value.
type Field struct{ Name, Value string }

// Metadata returns eventmesh's metadata of e under the names every broker
// uses in the enmeshed format: ce-id, ce-type, ce-source, ce-time,
// ce-specversion, eventmesh-origin, and x-correlation-id and traceparent
// when the event has them.
func Metadata(e router.Event) []Field {
	h := e.Header()
	fs := make([]Field, 0, 8)
	for _, name := range []string{router.HeaderID, router.HeaderType, router.HeaderSource, router.HeaderTime, router.HeaderSpecVersion, router.HeaderOrigin, router.HeaderCorrelationID, router.HeaderTraceparent} {
		if v := h.Get(name); v != "" {
			fs = append(fs, Field{Name: name, Value: v})
		}
	}
	return fs
}

// Body returns what the bridge sends as the message body: the event's
// data, or {} for an event stored without data (as the Connector sends).
func Body(e router.Event) []byte {
	if len(e.Data) == 0 {
		return []byte("{}")
	}
	return e.Data
}

// Expand replaces {{trigger}} in a template by the event's namespace (with
// its dots; MQTT topics turn them into / themselves).
func Expand(template, namespace string) string {
	return strings.ReplaceAll(template, router.TriggerPlaceholder, namespace)
}

// CloudEventAttributes returns e's CloudEvents context attributes under
// their CloudEvents names, for the bindings' binary mode: specversion, id,
// type (the namespace), source, time, and the extensions correlationid (the
// Correlation extension), traceparent (Distributed Tracing) and
// eventmeshorigin when the event has them. datacontenttype is left out:
// each binding carries it in the protocol's own content-type field. A
// binding that prefixes attribute names adds its prefix itself.
func CloudEventAttributes(e router.Event) []Field {
	source := e.Source
	if source == "" {
		source = router.DefaultSource // required by CloudEvents; events from the producer always have one
	}
	fs := make([]Field, 0, 8)
	fs = append(fs,
		Field{Name: "specversion", Value: router.SpecVersion},
		Field{Name: "id", Value: e.ID},
		Field{Name: "type", Value: e.Namespace},
		Field{Name: "source", Value: source})
	if !e.Time.IsZero() {
		fs = append(fs, Field{Name: "time", Value: e.Time.UTC().Format(router.TimeFormat)})
	}
	for _, f := range []Field{{"correlationid", e.CorrelationID}, {"traceparent", e.Traceparent}, {"eventmeshorigin", string(e.Origin)}} {
		if f.Value != "" {
			fs = append(fs, f)
		}
	}
	return fs
}
