package router

import "testing"

func TestOrderKey(t *testing.T) {
	const peer = "did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3"
	for name, tc := range map[string]struct{ data, want string }{
		"relationship":      {relPending, "did:e:x:dids:4b"},
		"incoming message":  {`{"id":"MSG1","isOwn":false,"createdBy":"` + peer + `","recipients":[{"address":"me"}]}`, peer},
		"own message":       {`{"id":"MSG1","isOwn":true,"createdBy":"me","recipients":[{"address":"` + peer + `"}]}`, peer},
		"request":           {`{"id":"REQ1","peer":"` + peer + `","status":"Open"}`, peer},
		"status change":     {`{"request":{"id":"REQ1","peer":"` + peer + `"},"newStatus":"Decided"}`, peer},
		"message processed": {`{"message":{"isOwn":false,"createdBy":"` + peer + `"},"result":"NoRequest"}`, peer},
		"decomposed":        {`{"relationshipId":"REL1"}`, "relationship:REL1"},
		"no peer":           {`{"id":"ATT1","content":{}}`, ""},
		"no data":           {``, ""},
		"not an object":     {`[1]`, ""},
	} {
		if got := OrderKey([]byte(tc.data)); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}
