package producer

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// FuzzParseItem: the body parser never panics, and whatever it accepts is a
// valid event whose body is valid JSON (or empty) and whose trigger is a
// literal subject suffix. It takes the handler's path: parseItem relies on
// the handler's one json.Valid over the whole body, so invalid JSON must be
// refused there, with a 400 that says so.
func FuzzParseItem(f *testing.F) {
	for _, s := range []string{
		`{"trigger":"transport.messageReceived","data":{"id":"MSG1"}}`,
		`{"trigger":"runtime.modulesStarted"}`,
		`{"trigger":"a.b","data":null}`,
		`{"trigger":"a..b"}`, `{"trigger":5}`, `{"data":[1,2]}`, `[]`, `{"trigger":"x","data":{"a":1}} {}`,
		`{"trigger":"transport.relationshipChanged","data":{"id":"REL1","status":"Pending","auditLog":[{}]}}`,
	} {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "transport.messageReceived")
	}
	f.Fuzz(func(t *testing.T, body []byte, urlTrigger string) {
		if router.ValidateTrigger(urlTrigger) != nil {
			urlTrigger = ""
		}
		body, aerr := checkBody(body)
		if aerr != nil {
			if aerr.status != 400 || aerr.code != CodeInvalidJSON {
				t.Fatalf("bad error %+v", aerr)
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
		if e.Data != nil && !json.Valid(e.Data) {
			t.Fatalf("data %q is not JSON", e.Data)
		}
		if len(e.ID) != 32 {
			t.Fatalf("id %q", e.ID)
		}
	})
}
