package producer

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/eventmesh/eventmesh/router"
)

// FuzzParseItem: the body parser never panics, and whatever it accepts is a
// valid event whose body is valid JSON in valid UTF-8 (or empty) and whose
// trigger is a literal subject suffix. It takes the handler's path:
// parseItem relies on the handler's one check over the whole body, so
// invalid JSON (invalid UTF-8 included) must be refused there, with a 400
// that says so, and nothing else may be.
func FuzzParseItem(f *testing.F) {
	for _, s := range []string{
		`{"trigger":"transport.messageReceived","data":{"id":"MSG1"}}`,
		`{"trigger":"runtime.modulesStarted"}`,
		`{"trigger":"a.b","data":null}`,
		`{"trigger":"a..b"}`, `{"trigger":5}`, `{"data":[1,2]}`, `[]`, `{"trigger":"x","data":{"a":1}} {}`,
		`{"trigger":"transport.relationshipChanged","data":{"id":"REL1","status":"Pending","auditLog":[{}]}}`,
		`{"trigger":"transport.messageReceived","data":{"subject":"caf` + "\xe9" + `"}}`,
		`{"trigger":"transport.messageReceived","data":{"subject":"café €"}}`,
	} {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "transport.messageReceived")
	}
	f.Fuzz(func(t *testing.T, body []byte, urlTrigger string) {
		if router.ValidateTrigger(urlTrigger) != nil {
			urlTrigger = ""
		}
		raw := body
		body, aerr := checkBody(body)
		if aerr != nil {
			if aerr.status != 400 || aerr.code != CodeInvalidJSON {
				t.Fatalf("bad error %+v", aerr)
			}
			if trimmed := bytes.TrimSpace(raw); json.Valid(trimmed) && utf8.Valid(trimmed) {
				t.Fatalf("refused %q, which is JSON in UTF-8", raw)
			}
			return
		}
		e, aerr := parseItem(body, requestMeta{source: "s", urlTrigger: urlTrigger, time: time.Unix(0, 0)})
		if aerr != nil {
			if aerr.status != 400 || aerr.code == "" || aerr.message == "" {
				t.Fatalf("bad error %+v", aerr)
			}
			return
		}
		if err := router.ValidateTrigger(e.Namespace); err != nil {
			t.Fatalf("accepted trigger %q: %v", e.Namespace, err)
		}
		if urlTrigger != "" && e.Namespace != urlTrigger {
			t.Fatalf("trigger %q differs from URL %q", e.Namespace, urlTrigger)
		}
		if e.Data != nil && (!json.Valid(e.Data) || !utf8.Valid(e.Data)) {
			t.Fatalf("data %q is not JSON in UTF-8", e.Data)
		}
		if len(e.ID) != 32 {
			t.Fatalf("id %q", e.ID)
		}
	})
}
