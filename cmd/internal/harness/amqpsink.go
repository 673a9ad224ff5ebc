package harness

import (
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQPSink is the broker-side consumer of a bridge run on RabbitMQ. The
// bridge never declares topology, so the sink does: a durable topic
// exchange named Exchange (the bridge's BRIDGE_AMQP_EXCHANGE) and a queue
// of the same name bound to it with "#". It counts the queue's messages by
// their message-id (the event's ce-id); Close deletes both.
type AMQPSink struct {
	tally
	// Exchange is the exchange to point the bridge at.
	Exchange string
	conn     *amqp.Connection
	done     chan struct{}
}

// NewAMQPSink declares the exchange and queue name on the broker of url
// (amqp://…) and reads the queue until Close.
func NewAMQPSink(url, name string) (*AMQPSink, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	s := &AMQPSink{Exchange: name, conn: conn, done: make(chan struct{})}
	ds, err := s.declare()
	if err != nil {
		s.deleteTopology()
		conn.Close()
		return nil, err
	}
	go s.read(ds)
	return s, nil
}

// declare declares the exchange and the queue, binds them and starts
// consuming.
func (s *AMQPSink) declare() (<-chan amqp.Delivery, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.ExchangeDeclare(s.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %s: %w", s.Exchange, err)
	}
	if _, err := ch.QueueDeclare(s.Exchange, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare queue %s: %w", s.Exchange, err)
	}
	if err := ch.QueueBind(s.Exchange, "#", s.Exchange, false, nil); err != nil {
		return nil, fmt.Errorf("bind queue %s: %w", s.Exchange, err)
	}
	return ch.Consume(s.Exchange, "", true, true, false, false, nil)
}

func (s *AMQPSink) read(ds <-chan amqp.Delivery) {
	defer close(s.done)
	for d := range ds {
		s.add(d.MessageId, time.Now())
	}
	if !s.conn.IsClosed() {
		s.fail(errors.New("amqp sink: the broker closed the consumer's channel"))
	}
}

// deleteTopology deletes the queue and the exchange, each on a channel of
// its own (a failed delete closes its channel).
func (s *AMQPSink) deleteTopology() {
	if ch, err := s.conn.Channel(); err == nil {
		ch.QueueDelete(s.Exchange, false, false, false)
		ch.Close()
	}
	if ch, err := s.conn.Channel(); err == nil {
		ch.ExchangeDelete(s.Exchange, false, false)
		ch.Close()
	}
}

// Close deletes the queue and the exchange, then stops reading.
func (s *AMQPSink) Close() {
	s.deleteTopology()
	s.conn.Close()
	<-s.done
}
