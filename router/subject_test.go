package router

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateTrigger(t *testing.T) {
	valid := []string{"transport.messageReceived", "consumption.relationshipEvent.RELm4N5o6P7q8R9s0T1u", "a", "a-b_c.D9",
		strings.Repeat("a.", 15) + "a", strings.Repeat("x", 256)}
	for _, tr := range valid {
		if err := ValidateTrigger(tr); err != nil {
			t.Errorf("ValidateTrigger(%q) = %v, want nil", tr, err)
		}
	}
	invalid := map[string]string{
		"":                             "empty",
		"transport.>":                  "not allowed",
		"transport.*":                  "not allowed",
		"a b":                          "not allowed",
		"transport..x":                 "empty token",
		".transport":                   "empty token",
		"transport.":                   "empty token",
		"tränsport":                    "not allowed",
		"a\tb":                         "not allowed",
		strings.Repeat("x", 257):       "bytes long",
		strings.Repeat("a.", 16) + "a": "17 tokens",
	}
	for tr, want := range invalid {
		err := ValidateTrigger(tr)
		if err == nil || !errors.Is(err, ErrInvalidTrigger) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateTrigger(%q) = %v, want ErrInvalidTrigger mentioning %q", tr, err, want)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := MustSubjects("enmeshed")
	checks := map[string]string{
		s.Event("transport.messageReceived"):        "enmeshed.transport.messageReceived",
		s.Events():                                  "enmeshed.>",
		s.Replay("webhook-1a2b3c4d", "transport.x"): "enmeshed-replay.webhook-1a2b3c4d.transport.x",
		s.Replays("archiver"):                       "enmeshed-replay.archiver.>",
		s.DLQ("archiver", "transport.x"):            "enmeshed-dlq.archiver.transport.x",
		s.Outcome("autoaccept"):                     "enmeshed-outcome.autoaccept",
	}
	for got, want := range checks {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	for subject, want := range map[string]string{
		"enmeshed.transport.x":                  "transport.x",
		"enmeshed-replay.webhook-1.transport.x": "transport.x",
		"enmeshed-dlq.archiver.a.b.c":           "a.b.c",
		"other.transport.x":                     "",
		"enmeshed-replay.webhook-1":             "",
	} {
		got, ok := s.Namespace(subject)
		if got != want || ok != (want != "") {
			t.Errorf("Namespace(%s) = %q %v, want %q", subject, got, ok, want)
		}
	}
	if _, err := NewSubjects("en.meshed"); err == nil {
		t.Error("a prefix with a dot must be refused")
	}
}

func TestEventRoundTrip(t *testing.T) {
	s := MustSubjects("enmeshed")
	e := Event{ID: "0123456789abcdef0123456789abcdef", Namespace: "transport.messageReceived", Source: "enmeshed-connector",
		Time: time.Date(2026, 3, 1, 10, 15, 2, 431000000, time.UTC), Origin: OriginWebhook, Data: []byte(msgA),
		CorrelationID: "corr-1", Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	m := e.Msg(s)
	if m.Subject != "enmeshed.transport.messageReceived" || string(m.Data) != msgA {
		t.Fatalf("msg = %s %s", m.Subject, m.Data)
	}
	want := map[string]string{
		"ce-specversion": "1.0", "ce-id": e.ID, "ce-type": e.Namespace, "ce-source": "enmeshed-connector",
		"ce-time": "2026-03-01T10:15:02.431Z", "ce-datacontenttype": "application/json", "Nats-Msg-Id": e.ID,
		"eventmesh-origin": "webhook", "x-correlation-id": "corr-1", "traceparent": e.Traceparent,
	}
	for k, v := range want {
		if got := m.Header[k]; len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %v, want %s", k, got, v)
		}
	}
	if len(m.Header) != len(want) {
		t.Errorf("headers = %v", m.Header)
	}
	back, err := FromMsg(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != e.ID || back.Namespace != e.Namespace || !back.Time.Equal(e.Time) || back.Origin != e.Origin ||
		back.Source != e.Source || string(back.Data) != msgA || back.CorrelationID != "corr-1" || back.Traceparent != e.Traceparent {
		t.Errorf("round trip = %+v", back)
	}
	noData := Event{ID: e.ID, Namespace: "runtime.modulesStarted", Source: "s", Time: e.Time}
	if m := noData.Msg(s); len(m.Data) != 0 {
		t.Errorf("no data → empty body, got %q", m.Data)
	}
	if _, err := FromMsg(nil, nil); !errors.Is(err, ErrNotEvent) {
		t.Errorf("FromMsg(nil) = %v", err)
	}
}

func FuzzValidateTrigger(f *testing.F) {
	for _, s := range []string{"transport.messageReceived", "a..b", "a.>", "*", "a b", "", strings.Repeat("a.", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateTrigger(s) != nil {
			return
		}
		// A valid trigger is a literal subject: no wildcard, no white space,
		// no empty token, within bounds.
		if strings.ContainsAny(s, "*> \t\r\n") || strings.Contains(s, "..") || strings.HasPrefix(s, ".") ||
			strings.HasSuffix(s, ".") || len(s) > MaxTriggerBytes || strings.Count(s, ".")+1 > MaxTriggerTokens {
			t.Fatalf("accepted %q", s)
		}
		ns, ok := MustSubjects("enmeshed").Namespace("enmeshed." + s)
		if !ok || ns != s {
			t.Fatalf("namespace round trip %q -> %q", s, ns)
		}
	})
}

func TestSubjectMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"enmeshed.>", "enmeshed.transport.messageReceived", true},
		{"enmeshed.>", "enmeshed", false},
		{">", "a", true},
		{"enmeshed.*.messageReceived", "enmeshed.transport.messageReceived", true},
		{"enmeshed.*", "enmeshed.transport.messageReceived", false},
		{"enmeshed.transport.messageReceived", "enmeshed.transport.messageReceived", true},
		{"enmeshed.transport.messageReceived", "enmeshed.transport.messageSent", false},
		{"enmeshed.transport", "enmeshed.transport.messageReceived", false},
		{"a.b.c", "a.b", false},
		{"a.*", "a.", false},
	} {
		if got := SubjectMatch(tc.filter, tc.subject); got != tc.want {
			t.Errorf("SubjectMatch(%q, %q) = %v", tc.filter, tc.subject, got)
		}
	}
}

func TestIsReplay(t *testing.T) {
	s := MustSubjects("enmeshed")
	for subject, want := range map[string]bool{
		s.Replay("webhook-1", "transport.messageReceived"): true,
		s.Event("transport.messageReceived"):               false,
		s.DLQ("webhook-1", "transport.messageReceived"):    false,
		"enmeshedx-replay.a.b":                             false,
		"enmeshed-replay":                                  false,
	} {
		if got := s.IsReplay(subject); got != want {
			t.Errorf("IsReplay(%q) = %v", subject, got)
		}
	}
}

func TestReplayMsg(t *testing.T) {
	s := MustSubjects("enmeshed")
	e := Event{ID: "abc", Namespace: "transport.messageReceived", Source: "src", Origin: OriginWebhook, Data: []byte(`{}`)}
	at := time.Unix(0, 42)
	for consumer, subject := range map[string]string{"webhook-1": "enmeshed-replay.webhook-1.transport.messageReceived", "": "enmeshed.transport.messageReceived"} {
		m := e.ReplayMsg(s, consumer, at)
		if m.Subject != subject || m.Header.Get(HeaderOrigin) != string(OriginReplay) || m.Header.Get(HeaderID) != "abc" ||
			m.Header.Get(HeaderMsgID) != ReplayMsgID("abc", at) || string(m.Data) != `{}` {
			t.Errorf("consumer %q: %s %v", consumer, m.Subject, m.Header)
		}
	}
	if e.Origin != OriginWebhook {
		t.Error("ReplayMsg changed the event")
	}
}
