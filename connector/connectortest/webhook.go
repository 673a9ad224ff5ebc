package connectortest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/eventmesh/eventmesh/router"
)

// Emit fires an arbitrary event, e.g. "runtime.modulesStarted" with nil
// data or "consumption.attributeCreated" with a LocalAttributeDTO. data may
// be nil (no "data" key in the webhook body), JSON bytes (json.RawMessage
// or []byte, sent as they are) or a value to marshal.
func (d *Server) Emit(namespace string, data any) {
	if namespace == "" {
		d.log.Warn("connector double: Emit without a namespace ignored")
		return
	}
	var raw json.RawMessage
	switch v := data.(type) {
	case nil:
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		raw = encodeJSON(v)
	}
	if raw != nil && !json.Valid(raw) {
		d.log.Warn("connector double: Emit with data that is not JSON ignored", "namespace", namespace)
		return
	}
	d.fire([]event{{namespace, raw}}, "")
}

// fire sends one webhook POST per event, concurrently and without waiting,
// as the webhooks module does (handlers of the in-memory bus are not
// awaited, so arrival order is not guaranteed).
func (d *Server) fire(evs []event, correlationID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down || d.webhook == nil || len(evs) == 0 {
		return
	}
	w := d.webhook
	d.inflight += len(evs)
	for _, ev := range evs {
		go d.post(w, ev, correlationID)
	}
}

// post makes one webhook POST: no retry, errors and non-2xx only logged.
func (d *Server) post(w *webhookTarget, ev event, correlationID string) {
	defer func() {
		d.mu.Lock()
		d.sent++
		d.inflight--
		if d.inflight == 0 {
			d.idle.Broadcast()
		}
		d.mu.Unlock()
	}()
	url := strings.ReplaceAll(w.url, router.TriggerPlaceholder, ev.namespace)
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, url, bytes.NewReader(webhookBody(ev)))
	if err != nil {
		d.log.Warn("connector double: webhook URL unusable", "trigger", ev.namespace, "error", err)
		return
	}
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	if correlationID != "" {
		req.Header.Set(router.HeaderCorrelationID, correlationID)
	}
	// What axios sends for a JSON body.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/plain, */*")
	resp, err := d.hooks.Do(req)
	if err != nil {
		d.log.Warn("connector double: webhook request failed", "trigger", ev.namespace, "error", err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		d.log.Warn("connector double: webhook returned an unexpected status; expected 200 to 299",
			"trigger", ev.namespace, "status", resp.StatusCode)
	}
}

// webhookBody is JSON.stringify({data, trigger}): "data" first, and left
// out when the event has none.
func webhookBody(ev event) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if ev.data != nil {
		b.WriteString(`"data":`)
		b.Write(ev.data)
		b.WriteByte(',')
	}
	b.WriteString(`"trigger":`)
	b.Write(encodeJSON(ev.namespace))
	b.WriteByte('}')
	return b.Bytes()
}
