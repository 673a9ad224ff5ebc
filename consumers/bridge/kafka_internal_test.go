package bridge

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestKafkaTarget(t *testing.T) {
	for _, tc := range []struct {
		url, brokers, topic, err string
	}{
		{url: "kafka://k1:9093/events", brokers: "k1:9093", topic: "events"},
		{url: "kafka://k1:9093,k2,k3:9094/mesh.{{trigger}}", brokers: "k1:9093 k2:9092 k3:9094", topic: "mesh.{{trigger}}"},
		{url: "kafka://k1/{{trigger}}", brokers: "k1:9092", topic: "{{trigger}}"},
		{url: "kafka:///events", err: "broker address is missing"},
		{url: "kafka://k1,/events", err: "broker address is missing"},
		{url: "kafka://k1/", err: "a topic of"},
		{url: "kafka://k1/a/b", err: "a topic of"},
		{url: "kafka://k1/ev ents", err: "a topic of"},
		{url: "kafka://user:hunter2@k1/events", err: "BRIDGE_KAFKA_USER"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		brokers, topic, err := kafkaTarget(u)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "BRIDGE_URL") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: error %v, want one naming BRIDGE_URL with %q, without the password", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(brokers, " ") != tc.brokers || topic != tc.topic {
			t.Errorf("%s: %q %q %v, want %q %q", tc.url, brokers, topic, err, tc.brokers, tc.topic)
		}
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c   KafkaConfig
		err string // the variable the error names; "" for none
	}{
		{KafkaConfig{}, ""},
		{KafkaConfig{SASLMechanism: "PLAIN", User: "u", Password: "p"}, ""},
		{KafkaConfig{SASLMechanism: "scram-sha-512", User: "u", Password: "p"}, ""},
		{KafkaConfig{SASLMechanism: "SCRAM-SHA-256", User: "u", Password: "p"}, ""},
		{KafkaConfig{SASLMechanism: "GSSAPI", User: "u", Password: "p"}, "BRIDGE_KAFKA_SASL_MECHANISM"},
		{KafkaConfig{SASLMechanism: "PLAIN", Password: "p"}, "BRIDGE_KAFKA_USER"},
		{KafkaConfig{SASLMechanism: "PLAIN", User: "u"}, "BRIDGE_KAFKA_PASSWORD"},
		{KafkaConfig{User: "u", Password: "p"}, "BRIDGE_KAFKA_SASL_MECHANISM"},
	} {
		err := tc.c.validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err+":")) {
			t.Errorf("%+v: %v, want an error naming %q", tc.c.SASLMechanism, err, tc.err)
		}
	}
}

func TestPubSubTopic(t *testing.T) {
	for _, tc := range []struct{ url, project, name string }{
		{"pubsub://my-project/events", "my-project", "projects/my-project/topics/events"},
		{"pubsub://my-project/", "", ""},
		{"pubsub:///events", "", ""},
		{"pubsub://p/a/b", "", ""},
		{"pubsub://u:hunter2@p/events", "", ""},
	} {
		u, _ := url.Parse(tc.url)
		project, name, err := pubsubTopic(u)
		if tc.name == "" {
			if err == nil || !strings.HasPrefix(err.Error(), "BRIDGE_URL:") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: %v, want an error naming BRIDGE_URL without the password", tc.url, err)
			}
			continue
		}
		if !slices.Equal([]string{project, name}, []string{tc.project, tc.name}) || err != nil {
			t.Errorf("%s: %q %q %v", tc.url, project, name, err)
		}
	}
}
