package bridge

import "github.com/eventmesh/eventmesh/consumers"

// Config is every BRIDGE_* setting. The shared settings are here; each
// broker's own are in its config type (AMQPConfig in amqp.go, …).
//
// The runtime wiring (New, durable naming, readiness, validation) completes
// this file.
type Config struct {
	URL     string `env:"BRIDGE_URL" secret:"true" desc:"the broker destination; its scheme picks the broker: amqp(s)://, mqtt(s)://, redis(s)://, pubsub://PROJECT/TOPIC, kafka://HOST:PORT[,HOST:PORT]/TOPIC"`
	Format  Format `env:"BRIDGE_FORMAT" envDefault:"enmeshed" desc:"enmeshed (what the Connector's messageBrokerPublisher sends, with eventmesh's metadata beside the body) or cloudevents (the protocol binding's binary mode)"`
	Trigger string `env:"BRIDGE_TRIGGERS" envDefault:"**" desc:"events to bridge, Connector trigger patterns separated by commas (transport.messageReceived, transport.*, **)"`
	Durable string `env:"BRIDGE_DURABLE" desc:"durable consumer name; default bridge-<8 hex digits of SHA-256 of the scheme, hosts, path and destination>"`
	Order   string `env:"BRIDGE_ORDER" envDefault:"none" desc:"none, or per-key: one peer's events in order (at most one unconfirmed message per key)"`

	TLSCA   string `env:"BRIDGE_TLS_CA" desc:"PEM file of the CA that signs the broker's certificate (default: the system's)"`
	TLSCert string `env:"BRIDGE_TLS_CERT" desc:"PEM file of a client certificate, with BRIDGE_TLS_KEY"`
	TLSKey  string `env:"BRIDGE_TLS_KEY" desc:"PEM file of the client certificate's key"`

	AMQP   AMQPConfig
	MQTT   MQTTConfig
	Redis  RedisConfig
	PubSub PubSubConfig
	Kafka  KafkaConfig

	Runtime consumers.Config `envPrefix:"BRIDGE_"`
}
