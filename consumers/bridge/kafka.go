package bridge

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/eventmesh/eventmesh/router"
)

// KafkaConfig holds the BRIDGE_KAFKA_* settings.
type KafkaConfig struct {
	SASLMechanism string `env:"BRIDGE_KAFKA_SASL_MECHANISM" desc:"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)"`
	User          string `env:"BRIDGE_KAFKA_USER" desc:"SASL user name"`
	Password      string `env:"BRIDGE_KAFKA_PASSWORD" secret:"true" desc:"SASL password"`
}

// The SASL mechanisms of BRIDGE_KAFKA_SASL_MECHANISM.
const (
	saslPlain       = "PLAIN"
	saslSCRAMSHA256 = "SCRAM-SHA-256"
	saslSCRAMSHA512 = "SCRAM-SHA-512"
)

// Destination names what the bridge publishes to (durable naming); the
// topic is in BRIDGE_URL.
func (c KafkaConfig) Destination() string { return "" }

// validate checks the Kafka settings: a known SASL mechanism, and a user
// and password with it.
func (c KafkaConfig) validate() error {
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if c.User != "" || c.Password != "" {
			return fmt.Errorf("BRIDGE_KAFKA_SASL_MECHANISM: empty, but BRIDGE_KAFKA_USER or BRIDGE_KAFKA_PASSWORD is set: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		return nil
	case saslPlain, saslSCRAMSHA256, saslSCRAMSHA512:
	default:
		return fmt.Errorf("BRIDGE_KAFKA_SASL_MECHANISM: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not %q", c.SASLMechanism)
	}
	if c.User == "" {
		return fmt.Errorf("BRIDGE_KAFKA_USER: required with BRIDGE_KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
	}
	if c.Password == "" {
		return fmt.Errorf("BRIDGE_KAFKA_PASSWORD: required with BRIDGE_KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
	}
	return nil
}

// kafkaTopicName is what Kafka accepts as a topic name.
var kafkaTopicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// kafkaDefaultPort is the port of a broker named without one.
const kafkaDefaultPort = "9092"

// kafkaTarget reads kafka://HOST:PORT[,HOST:PORT]/TOPIC: the seed brokers
// and the topic template ({{trigger}} is the event's namespace, whose
// tokens are valid in a topic name).
func kafkaTarget(u *url.URL) (brokers []string, topic string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("BRIDGE_URL: want kafka://HOST:PORT[,HOST:PORT]/TOPIC (%s), not %s", why, u.Redacted())
	}
	if u.User != nil {
		return nil, "", bad("SASL credentials go in BRIDGE_KAFKA_USER and BRIDGE_KAFKA_PASSWORD")
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, "", bad("a broker address is missing")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, kafkaDefaultPort)
		}
		brokers = append(brokers, h)
	}
	topic = strings.TrimPrefix(u.Path, "/")
	if !kafkaTopicName.MatchString(strings.ReplaceAll(topic, router.TriggerPlaceholder, "t")) {
		return nil, "", bad("a topic of letters, digits, '.', '_' and '-', or {{trigger}}")
	}
	return brokers, topic, nil
}
