package router

import (
	"strings"
	"testing"
)

const (
	msgA       = `{"id":"MSGq8WnJ3kT0aZp4RcVx","isOwn":false,"content":{"@type":"Mail","subject":"Invoice"},"createdAt":"2026-03-01T10:15:00.120Z"}`
	relPending = `{"id":"RELm4N5o6P7q8R9s0T1u","templateId":"RLTb7C8d9E0f1G2h3I4j","status":"Pending","peer":"did:e:x:dids:4b",
		"auditLog":[{"createdAt":"2026-03-01T09:00:00.000Z","reason":"Creation","newStatus":"Pending"}]}`
	relActive = `{"id":"RELm4N5o6P7q8R9s0T1u","templateId":"RLTb7C8d9E0f1G2h3I4j","status":"Active","peer":"did:e:x:dids:4b",
		"auditLog":[{"reason":"Creation","newStatus":"Pending"},{"reason":"AcceptanceOfCreation","oldStatus":"Pending","newStatus":"Active"}]}`
	// Before v5 a RelationshipDTO carried changes instead of auditLog.
	relV4 = `{"id":"RELv4","template":{"id":"RLTx"},"status":"Pending","peer":"id1abc",
		"changes":[{"id":"RCH1","type":"Creation","status":"Pending","request":{"createdBy":"id1abc"}}]}`
	reqIncoming = `{"id":"REQk5L6m7N8o9P0q1R2s","isOwn":false,"status":"Open","content":{"@type":"Request","items":[]}}`
	reqStatus   = `{"request":{"id":"REQk5L6m7N8o9P0q1R2s","status":"ManualDecisionRequired"},"oldStatus":"DecisionRequired","newStatus":"ManualDecisionRequired"}`
	attr        = `{"@type":"PeerIdentityAttribute","id":"ATTc3D4e5F6g7H8i9J0k","content":{"value":{"@type":"EMailAddress","value":"jane@example.org"}}}`
)

// One row per rule of DESIGN.md's identity table, each with the exact key.
func TestIdentityKey(t *testing.T) {
	tests := []struct {
		namespace, data string
		kind            KeyKind
		key             string // "" when unique
	}{
		{"transport.messageReceived", msgA, KeyMessageID, "MSGq8WnJ3kT0aZp4RcVx"},
		{"transport.messageSent", msgA, KeyMessageID, "MSGq8WnJ3kT0aZp4RcVx"},
		{"transport.relationshipChanged", relPending, KeyRelationship, "RELm4N5o6P7q8R9s0T1u\n1\nPending"},
		{"transport.relationshipChanged", relActive, KeyRelationship, "RELm4N5o6P7q8R9s0T1u\n2\nActive"},
		{"transport.relationshipChanged", relV4, KeyRelationship, "RELv4\n1\nPending"},
		{"consumption.incomingRequestReceived", reqIncoming, KeyRequestID, "REQk5L6m7N8o9P0q1R2s"},
		{"consumption.incomingRequestStatusChanged", reqStatus, KeyRequestStatus, "REQk5L6m7N8o9P0q1R2s\nManualDecisionRequired"},
		{"consumption.outgoingRequestStatusChanged", reqStatus, KeyRequestStatus, "REQk5L6m7N8o9P0q1R2s\nManualDecisionRequired"},
		{"consumption.relationshipEvent.RELm4N5o6P7q8R9s0T1u", relActive, KeyUnique, ""},
		{"runtime.modulesStarted", `{}`, KeyUnique, ""},
		{"runtime.modulesStarted", ``, KeyUnique, ""},
		{"transport.datawalletSynchronized", ``, KeyCanonical, ""},                   // no data: unique
		{"transport.identityDeletionProcessStatusChanged", `null`, KeyCanonical, ""}, // data may be undefined
		{"consumption.attributeCreated", attr, KeyCanonical,
			`{"@type":"PeerIdentityAttribute","content":{"value":{"@type":"EMailAddress","value":"jane@example.org"}},"id":"ATTc3D4e5F6g7H8i9J0k"}`},
		{"transport.relationshipDecomposedBySelf", ` { "relationshipId" : "REL1" } `, KeyCanonical, `{"relationshipId":"REL1"}`},
		{"consumption.messageProcessed", `{"result":"NoRequest","message":{"id":"MSG1","n":1.50}}`, KeyCanonical,
			`{"message":{"id":"MSG1","n":1.50},"result":"NoRequest"}`},
		{"my.custom.event", `[3,"<a&b>",{"b":1,"a":2}]`, KeyCanonical, `[3,"<a&b>",{"a":2,"b":1}]`},
		// Id-keyed events without their fields fall back to canonical JSON: kept, not refused.
		{"transport.messageReceived", `{"content":"x"}`, KeyMessageID, `{"content":"x"}`},
		{"transport.relationshipChanged", `{"id":"REL1"}`, KeyRelationship, `{"id":"REL1"}`},
		{"consumption.incomingRequestStatusChanged", `{"newStatus":"Open"}`, KeyRequestStatus, `{"newStatus":"Open"}`},
	}
	for _, tt := range tests {
		t.Run(tt.namespace+"/"+tt.key, func(t *testing.T) {
			if got := KeyKindOf(tt.namespace); got != tt.kind {
				t.Errorf("KeyKindOf = %v, want %v", got, tt.kind)
			}
			key, unique, err := IdentityKey(tt.namespace, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if unique != (tt.key == "") || key != tt.key {
				t.Errorf("IdentityKey = %q unique=%v, want %q unique=%v", key, unique, tt.key, tt.key == "")
			}
			id1, _ := EventID("src", tt.namespace, []byte(tt.data))
			id2, _ := EventID("src", tt.namespace, []byte(tt.data))
			if len(id1) != 32 || strings.ToLower(id1) != id1 {
				t.Errorf("EventID = %q, want 32 lower-case hex digits", id1)
			}
			if (id1 == id2) == unique {
				t.Errorf("EventID twice: %s, %s; unique=%v", id1, id2, unique)
			}
		})
	}
}

// Every catalogue namespace has a rule, and the rule is the one DESIGN.md gives it.
func TestCatalogueRules(t *testing.T) {
	idKeyed := map[string]KeyKind{
		"transport.messageReceived":                KeyMessageID,
		"transport.messageSent":                    KeyMessageID,
		"transport.relationshipChanged":            KeyRelationship,
		"consumption.incomingRequestReceived":      KeyRequestID,
		"consumption.incomingRequestStatusChanged": KeyRequestStatus,
		"consumption.outgoingRequestStatusChanged": KeyRequestStatus,
	}
	for _, ns := range Catalogue {
		if err := ValidateTrigger(ns); err != nil {
			t.Errorf("catalogue entry %s: %v", ns, err)
		}
		want := KeyCanonical
		if k, ok := idKeyed[ns]; ok {
			want = k
		} else if strings.HasPrefix(ns, "runtime.") {
			want = KeyUnique
		}
		if got := KeyKindOf(ns); got != want {
			t.Errorf("KeyKindOf(%s) = %v, want %v", ns, got, want)
		}
		if MetricLabel(ns) != ns {
			t.Errorf("MetricLabel(%s) = %s", ns, MetricLabel(ns))
		}
	}
	if got := MetricLabel("consumption.relationshipEvent.REL123"); got != LabelRelationshipEvent {
		t.Errorf("relationshipEvent label = %s", got)
	}
	if got := MetricLabel("acme.anything"); got != LabelOther {
		t.Errorf("unknown label = %s", got)
	}
}

// Distinct events of one namespace never share an id; the same event from
// two paths (webhook and poller) always does.
func TestDistinctEventsDistinctIDs(t *testing.T) {
	cases := map[string][]string{
		"transport.messageReceived": {msgA, `{"id":"MSGother"}`, `{"id":"MSGq8WnJ3kT0aZp4RcVX"}`},
		"transport.relationshipChanged": {relPending, relActive, relV4,
			// Same audit-log length, different status (v4: a change accepted in place).
			`{"id":"RELv4","status":"Active","changes":[{"id":"RCH1","status":"Accepted"}]}`,
			// Same status after a reactivation: the longer audit log tells them apart.
			`{"id":"RELm4N5o6P7q8R9s0T1u","status":"Active","auditLog":[{},{},{},{}]}`},
		"consumption.incomingRequestStatusChanged": {reqStatus,
			`{"request":{"id":"REQk5L6m7N8o9P0q1R2s"},"oldStatus":"ManualDecisionRequired","newStatus":"Decided"}`,
			`{"request":{"id":"REQother"},"newStatus":"ManualDecisionRequired"}`},
		"consumption.attributeCreated": {attr, `{"id":"ATTc3D4e5F6g7H8i9J0k"}`, `{"id":"ATTc3D4e5F6g7H8i9J0k","x":null}`, `{"a":"1"}`, `{"a":1}`},
	}
	for ns, datas := range cases {
		seen := map[string]string{}
		for _, d := range datas {
			id, err := EventID("enmeshed-connector", ns, []byte(d))
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := seen[id]; ok {
				t.Errorf("%s: %s and %s share id %s", ns, prev, d, id)
			}
			seen[id] = d
		}
	}
	// Source and namespace are part of the identity.
	a, _ := EventID("connector-a", "transport.messageReceived", []byte(msgA))
	b, _ := EventID("connector-b", "transport.messageReceived", []byte(msgA))
	c, _ := EventID("connector-a", "transport.messageSent", []byte(msgA))
	if a == b || a == c {
		t.Errorf("ids must differ across source and namespace: %s %s %s", a, b, c)
	}
	// Key order and white space do not make a different event.
	x, _ := EventID("s", "consumption.attributeCreated", []byte(`{"a":1,"b":[1,2]}`))
	y, _ := EventID("s", "consumption.attributeCreated", []byte("{ \"b\" : [1, 2],\n \"a\":1 }"))
	if x != y {
		t.Errorf("canonical JSON differs: %s %s", x, y)
	}
}

func TestHashIDVector(t *testing.T) {
	// Computed outside Go:
	// printf 'enmeshed-connector\ntransport.messageReceived\nMSGq8WnJ3kT0aZp4RcVx' | sha256sum | cut -c1-32
	const want = "e23051b9952c6b32f8d68c59a53fc3a6"
	if got := HashID("enmeshed-connector", "transport.messageReceived", "MSGq8WnJ3kT0aZp4RcVx"); got != want {
		t.Errorf("HashID = %s, want %s", got, want)
	}
	if got, _ := EventID("enmeshed-connector", "transport.messageReceived", []byte(msgA)); got != want {
		t.Errorf("EventID = %s, want %s", got, want)
	}
}

func TestEventIDInvalidJSON(t *testing.T) {
	if _, err := EventID("s", "consumption.attributeCreated", []byte(`{"a":`)); err == nil {
		t.Fatal("want error for invalid JSON")
	}
	if _, err := CanonicalJSON([]byte(`{} {}`)); err == nil {
		t.Fatal("want error for two values")
	}
}

func FuzzEventID(f *testing.F) {
	for _, d := range []string{msgA, relPending, relV4, reqStatus, attr, `null`, ``, `[1,2]`, `"x"`} {
		f.Add("transport.relationshipChanged", d)
		f.Add("consumption.attributeCreated", d)
	}
	f.Fuzz(func(t *testing.T, namespace, data string) {
		key, unique, err := IdentityKey(namespace, []byte(data))
		if err != nil || unique {
			return
		}
		// Deterministic, and canonical JSON is a fixed point.
		key2, _, _ := IdentityKey(namespace, []byte(data))
		if key != key2 {
			t.Fatalf("not deterministic: %q %q", key, key2)
		}
		if KeyKindOf(namespace) == KeyCanonical {
			c, err := CanonicalJSON([]byte(key))
			if err != nil || string(c) != key {
				t.Fatalf("canonical JSON not a fixed point: %q -> %q (%v)", key, c, err)
			}
		}
	})
}
