package router

import "testing"

// The header names and the URL placeholder are part of the wire contract:
// receivers, scripts and stored dead letters depend on them exactly.
func TestWireNames(t *testing.T) {
	for got, want := range map[string]string{
		HeaderSpecVersion: "ce-specversion", HeaderID: "ce-id", HeaderType: "ce-type", HeaderSource: "ce-source",
		HeaderTime: "ce-time", HeaderDataContentType: "ce-datacontenttype", HeaderMsgID: "Nats-Msg-Id",
		HeaderOrigin: "eventmesh-origin", HeaderCorrelationID: "x-correlation-id", HeaderTraceparent: "traceparent",
		HeaderConsumer: "eventmesh-consumer", HeaderReason: "eventmesh-reason", HeaderAttempts: "eventmesh-attempts",
		HeaderSubject: "eventmesh-subject", HeaderStreamSeq: "eventmesh-stream-seq", HeaderDeadAt: "eventmesh-dead-at",
		HeaderPinID: "Nats-Pin-Id", TriggerPlaceholder: "{{trigger}}",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
