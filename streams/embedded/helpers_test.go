package embedded_test

import "github.com/nats-io/nats.go/jetstream"

func jetstreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}
}
