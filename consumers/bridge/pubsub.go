package bridge

import (
	"fmt"
	"net/url"
	"strings"
)

// PubSubConfig holds the BRIDGE_PUBSUB_* settings: none so far. The project
// and topic are in BRIDGE_URL (pubsub://PROJECT/TOPIC); credentials come
// the way every Google client finds them (Application Default Credentials,
// GOOGLE_APPLICATION_CREDENTIALS), and PUBSUB_EMULATOR_HOST points the
// client at an emulator.
type PubSubConfig struct{}

// Destination names what the bridge publishes to (durable naming); the
// project and topic are in BRIDGE_URL.
func (c PubSubConfig) Destination() string { return "" }

// validate checks the Pub/Sub settings.
func (c PubSubConfig) validate() error { return nil }

// pubsubTopic returns the topic's full name, projects/PROJECT/topics/TOPIC,
// from pubsub://PROJECT/TOPIC.
func pubsubTopic(u *url.URL) (project, name string, err error) {
	project, topic := u.Host, strings.TrimPrefix(u.Path, "/")
	if project == "" || topic == "" || strings.Contains(topic, "/") || u.User != nil {
		return "", "", fmt.Errorf("BRIDGE_URL: want pubsub://PROJECT/TOPIC (credentials come from the environment, never the URL), not %s", u.Redacted())
	}
	return project, "projects/" + project + "/topics/" + topic, nil
}
