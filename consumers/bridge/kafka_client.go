//go:build kafka

package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
)

// kafkaLinger is how long a partition waits for more records before its
// batch goes out (the client's default is 10 ms). Each Publish waits for
// its own record, so records already batch while a request is in flight;
// lingering only adds latency.
const kafkaLinger = 0 * time.Millisecond

// kafkaPublisher produces to one Kafka topic (or one per namespace, with a
// {{trigger}} template) with an idempotent producer and acks from all
// in-sync replicas, and returns once the record is acknowledged.
type kafkaPublisher struct {
	client   *kgo.Client
	auth     *kafkaAuth
	brokers  string
	topic    string // template
	template bool
	format   Format
	log      *slog.Logger

	mu      sync.Mutex
	missing map[string]bool // topics a publish found missing, rechecked by Ready
	warned  bool            // the topic check was refused: warned once
}

// openKafka opens the Kafka publisher (scheme kafka). The client connects
// lazily: nothing is sent before the first Ready or Publish.
func openKafka(ctx context.Context, o Options) (Publisher, error) {
	brokers, topic, err := kafkaTarget(o.URL)
	if err != nil {
		return nil, err
	}
	if err := o.Config.Kafka.validate(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("eventmesh-bridge"),
		// Idempotent (the client's default), so a retried request never
		// doubles a record, and acknowledged by all in-sync replicas.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(kafkaLinger),
		kgo.WithLogger(kafkaLogger{log}),
		// Topics are never created: kgo only asks for it when told to
		// (kgo.AllowAutoTopicCreation), which the bridge never does.
	}
	if m := kafkaSASL(o.Config.Kafka); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if o.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.TLS))
	}
	auth := &kafkaAuth{next: make(chan struct{})}
	client, err := kgo.NewClient(append(opts, kgo.WithHooks(auth))...)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_URL: Kafka client: %w", err)
	}
	return &kafkaPublisher{
		client: client, auth: auth, brokers: strings.Join(brokers, ","), topic: topic,
		template: strings.Contains(topic, router.TriggerPlaceholder),
		format:   o.Format, log: log, missing: map[string]bool{},
	}, nil
}

// kafkaAuth watches the client's connections for refused credentials: the
// client keeps a record whose connection was refused buffered and tries
// again (forever), so Publish learns of the refusal here.
type kafkaAuth struct {
	mu   sync.Mutex
	err  error         // the last refusal
	next chan struct{} // closed at the next refused connection
}

// OnBrokerConnect implements kgo.HookBrokerConnect: err is the dial's or
// the connection's set-up (SASL included).
func (a *kafkaAuth) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil || !kafkaRefused(err) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
	close(a.next)
	a.next = make(chan struct{})
}

// refusal returns a channel closed at the next refused connection.
func (a *kafkaAuth) refusal() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.next
}

// last returns the last refusal.
func (a *kafkaAuth) last() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// kafkaSASL returns the SASL mechanism of c, nil without one (c is valid).
func kafkaSASL(c KafkaConfig) sasl.Mechanism {
	switch strings.ToUpper(c.SASLMechanism) {
	case saslPlain:
		return plain.Auth{User: c.User, Pass: c.Password}.AsMechanism()
	case saslSCRAMSHA256:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha256Mechanism()
	case saslSCRAMSHA512:
		return scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}

// Publish produces m and waits for its own record's acknowledgement; the
// records of concurrent calls are in flight together.
func (p *kafkaPublisher) Publish(ctx context.Context, m Message) error {
	rec := &kgo.Record{Topic: Expand(p.topic, m.Event.Namespace), Value: m.Body, Headers: p.headers(m.Event)}
	if key := m.Key(); key != "" {
		// One peer's records in one partition, in order.
		rec.Key = []byte(key)
	}
	done := make(chan error, 1)
	refused := p.auth.refusal()
	p.client.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
	var err error
	select {
	case err = <-done:
	case <-refused:
		// The record stays buffered until ctx ends; should the
		// credentials be fixed first, it may still be written.
		err = p.auth.last()
	case <-ctx.Done():
		// The record may still be written (an idempotent request in flight
		// cannot be taken back): the retry may deliver it twice.
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	if kafkaRefused(err) {
		return consumers.Pause(fmt.Errorf("kafka: produce to %s refused: %w: fix BRIDGE_KAFKA_USER/BRIDGE_KAFKA_PASSWORD or grant WRITE on the topic, then resume the consumer", rec.Topic, err))
	}
	if kafkaMissing(err) {
		p.mu.Lock()
		p.missing[rec.Topic] = true
		p.mu.Unlock()
		return fmt.Errorf("kafka: topic %s (BRIDGE_URL): %w: %w", rec.Topic, ErrMissingDestination, err)
	}
	return fmt.Errorf("kafka: produce to %s: %w", rec.Topic, err)
}

// headers returns the record headers of e in the configured format.
func (p *kafkaPublisher) headers(e router.Event) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, 0, 9)
	if p.format == FormatCloudEvents {
		// The Kafka binding's binary mode: each attribute as ce_<name>,
		// the datacontenttype in content-type.
		hs = append(hs, kgo.RecordHeader{Key: "content-type", Value: []byte(router.DataContentType)})
		for _, f := range CloudEventAttributes(e) {
			hs = append(hs, kgo.RecordHeader{Key: "ce_" + f.Name, Value: []byte(f.Value)})
		}
		return hs
	}
	hs = append(hs, kgo.RecordHeader{Key: "namespace", Value: []byte(e.Namespace)})
	for _, f := range Metadata(e) {
		hs = append(hs, kgo.RecordHeader{Key: f.Name, Value: []byte(f.Value)})
	}
	return hs
}

// Ready asks the brokers for the topic's metadata (never creating it): the
// topic of BRIDGE_URL, or with a {{trigger}} template the topics a publish
// found missing. A check refused for credentials or permission only warns:
// a refused produce pauses the consumer instead.
func (p *kafkaPublisher) Ready(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	req.Topics = []kmsg.MetadataRequestTopic{} // none: nil would ask for all
	for _, t := range p.checked() {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, p.client)
	if err != nil {
		if kafkaRefused(err) {
			p.warnRefused(err)
			return nil
		}
		return fmt.Errorf("kafka: brokers %s: %w", p.brokers, err)
	}
	for _, t := range resp.Topics {
		var name string
		if t.Topic != nil {
			name = *t.Topic
		}
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case err == nil:
			p.mu.Lock()
			delete(p.missing, name)
			p.mu.Unlock()
		case kafkaMissing(err):
			return fmt.Errorf("BRIDGE_URL: Kafka topic %s: %w: create it (the bridge never creates topics)", name, ErrMissingDestination)
		case kafkaRefused(err):
			p.warnRefused(err)
		default:
			return fmt.Errorf("kafka: topic %s: %w", name, err)
		}
	}
	return nil
}

// checked returns the topics Ready checks.
func (p *kafkaPublisher) checked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ts []string
	if !p.template {
		ts = append(ts, p.topic)
	}
	for t := range p.missing {
		if t != p.topic {
			ts = append(ts, t)
		}
	}
	return ts
}

// warnRefused warns, once, that the topic check was refused.
func (p *kafkaPublisher) warnRefused(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.warned {
		p.warned = true
		p.log.Warn("kafka: cannot check that the topic exists; producing anyway (a refused produce pauses the consumer)", "topic", p.topic, "err", err)
	}
}

// Close closes the client; records still buffered fail, and their events
// are delivered again by the runtime (the runtime drains before closing).
func (p *kafkaPublisher) Close() error {
	p.client.Close()
	return nil
}

// kafkaRefused reports whether err is rejected credentials or a missing
// permission: a person must act, so the consumer pauses.
func kafkaRefused(err error) bool {
	for _, e := range []error{kerr.SaslAuthenticationFailed, kerr.IllegalSaslState, kerr.UnsupportedSaslMechanism,
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// kafkaMissing reports whether err says the topic does not exist.
func kafkaMissing(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}

// kafkaLogger passes the client's warnings and errors to the bridge's log.
type kafkaLogger struct{ log *slog.Logger }

func (l kafkaLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
