package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
)

// MQTTConfig holds the BRIDGE_MQTT_* settings.
type MQTTConfig struct {
	Topic    string `env:"BRIDGE_MQTT_TOPIC" envDefault:"{{trigger}}" desc:"topic template; {{trigger}} is the event's namespace with its dots turned into / (acme/{{trigger}} gives acme/transport/messageReceived)"`
	QoS      int    `env:"BRIDGE_MQTT_QOS" envDefault:"1" desc:"1 (acknowledged after PUBACK) or 2 (after PUBCOMP)"`
	ClientID string `env:"BRIDGE_MQTT_CLIENT_ID" desc:"MQTT client id; default the durable name and a random suffix per process, so replicas do not disconnect each other"`
}

// Destination names what the bridge publishes to (durable naming).
func (c MQTTConfig) Destination() string { return c.Topic }

// validate checks the MQTT settings.
func (c MQTTConfig) validate() error {
	switch {
	case c.QoS != 1 && c.QoS != 2:
		return fmt.Errorf("BRIDGE_MQTT_QOS %d: want 1 or 2", c.QoS)
	case strings.TrimSpace(c.Topic) == "":
		return errors.New("BRIDGE_MQTT_TOPIC is empty: want a topic such as {{trigger}} or acme/{{trigger}}")
	case strings.ContainsAny(c.Topic, "+#\x00"):
		return fmt.Errorf("BRIDGE_MQTT_TOPIC %q: + and # are subscription wildcards, not allowed in a topic one publishes to", c.Topic)
	}
	return nil
}

// Topic returns the MQTT topic of an event of namespace ns: the template
// with {{trigger}} replaced by the namespace, its dots turned into / (as the
// Connector's messageBrokerPublisher does).
func (c MQTTConfig) topic(ns string) string {
	return Expand(c.Topic, strings.ReplaceAll(ns, ".", "/"))
}

// The MQTT session and connection settings.
//
// The bridge is a publisher only, so its session holds nothing but the
// QoS 1 and 2 messages in flight. Each connection after the first asks for
// the previous session (clean start false) and the broker keeps it for
// mqttSessionExpiry after a cut, so paho resends the unacknowledged
// PUBLISHes on reconnection (with DUP set; at QoS 2 the broker then drops
// its second copy) and a Publish waiting for its PUBACK completes without a
// second copy from JetStream's redelivery. The first connection of a
// process starts clean: the in-memory session of a new process knows no
// packet ids, and a QoS 2 id left in PUBREC state on the broker by an
// earlier process with the same BRIDGE_MQTT_CLIENT_ID would make the broker
// drop a new message under that id. The expiry is short because a process
// restarts with a new random client id by default, leaving its old session
// to expire on the broker, and because anything longer is JetStream's job:
// a publish in flight waits at most mqttReconnectGrace for the connection
// to come back (and at most mqttPublishTimeout in all) before it fails and
// the runtime's schedule retries it.
const (
	mqttSessionExpiry  = 60 // seconds
	mqttKeepAlive      = 30 // seconds
	mqttPublishTimeout = 30 * time.Second
	mqttConnectTimeout = 10 * time.Second
	mqttReconnectGrace = 5 * time.Second
)

// mqttPublisher publishes to an MQTT 5 broker through paho's autopaho
// connection manager, which connects in the background and reconnects
// after a cut or a broker restart.
//
// Publish returns after the broker's PUBACK (QoS 1) or PUBCOMP (QoS 2); many
// publishes from concurrent goroutines are in flight at once (up to the
// broker's Receive Maximum, Mosquitto's max_inflight_messages). A PUBACK
// reason code 0x10 (no matching subscribers) is a success: the broker took
// the message, and MQTT keeps nothing for subscribers that do not exist
// (a subscriber with a persistent session gets it later).
type mqttPublisher struct {
	cm     *autopaho.ConnectionManager
	cfg    MQTTConfig
	qos    byte
	format Format
	server string // host:port, never the credentials
	log    *slog.Logger

	mu         sync.Mutex
	connected  bool
	lastErr    error         // why the connection is down; nil while connected
	lossReason error         // why the connection dropped, when paho says so before autopaho reports the loss
	abandon    *abandonment  // fails the publishes in flight when closed (abandonInFlight)
	grace      *time.Timer   // abandons the publishes in flight when the connection stays down
	attempted  chan struct{} // closed after the first connection attempt
	once       sync.Once
}

// openMQTT opens the MQTT publisher (schemes mqtt and mqtts). It returns
// once the first connection attempt succeeded or failed; a broker that is
// down or refuses the connection is no error here: the publisher keeps
// connecting in the background, Ready and Publish report why it is not
// connected.
func openMQTT(ctx context.Context, o Options) (Publisher, error) {
	if err := o.Config.MQTT.validate(); err != nil {
		return nil, err
	}
	server, err := mqttServer(o.URL)
	if err != nil {
		return nil, err
	}
	clientID := o.Config.MQTT.ClientID
	if clientID == "" {
		clientID, err = mqttClientID(o.Durable)
		if err != nil {
			return nil, err
		}
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &mqttPublisher{
		cfg:       o.Config.MQTT,
		qos:       byte(o.Config.MQTT.QoS),
		format:    o.Format,
		server:    server.Host,
		log:       log.With("broker", server.Host, "client_id", clientID),
		abandon:   newAbandonment(),
		attempted: make(chan struct{}),
	}
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{server},
		TlsCfg:                        o.TLS,
		KeepAlive:                     mqttKeepAlive,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         mqttSessionExpiry,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 5*time.Second, time.Second, 2),
		ConnectTimeout:                mqttConnectTimeout,
		OnConnectionUp:                p.up,
		OnConnectionDown:              p.lost,
		OnConnectError:                p.connectFailed,
		ClientConfig: paho.ClientConfig{
			ClientID: clientID,
			// One session for all connections, so in-flight publishes
			// survive a reconnection (see mqttSessionExpiry).
			Session:            state.NewInMemory(),
			PacketTimeout:      mqttPublishTimeout,
			OnClientError:      p.reason,
			OnServerDisconnect: p.serverDisconnect,
		},
	}
	if u := o.URL.User; u != nil {
		cc.ConnectUsername = u.Username()
		if pw, ok := u.Password(); ok {
			cc.ConnectPassword = []byte(pw)
		}
	}
	// The connection lives until Close, not as long as ctx (a start-up
	// context).
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), cc)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_URL: mqtt: %w", err)
	}
	p.cm = cm
	select {
	case <-p.attempted:
	case <-ctx.Done():
		p.Close()
		return nil, ctx.Err()
	}
	return p, nil
}

// mqttServer returns the broker's URL without credentials, path or query
// (autopaho puts the URL in its errors), with the default port when none
// is given.
func mqttServer(u *url.URL) (*url.URL, error) {
	if u.Hostname() == "" {
		return nil, fmt.Errorf("BRIDGE_URL %s: no host", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "1883"
		if u.Scheme == "mqtts" {
			port = "8883"
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: net.JoinHostPort(u.Hostname(), port)}, nil
}

// mqttClientID is the default client id: the durable name and a random
// suffix, so replicas on one durable do not take each other's connection.
func mqttClientID(durable string) (string, error) {
	if durable == "" {
		durable = "eventmesh-bridge"
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("mqtt client id: %w", err)
	}
	return durable + "-" + hex.EncodeToString(b), nil
}

// Publish sends m and returns once the broker acknowledged it (PUBACK,
// PUBCOMP). Not connected, a cut connection or a negative acknowledgement
// is a retryable error; a broker that refuses the credentials or the
// topic returns consumers.Pause.
func (p *mqttPublisher) Publish(ctx context.Context, m Message) error {
	pub := &paho.Publish{QoS: p.qos, Topic: p.cfg.topic(m.Event.Namespace), Payload: m.Body, Properties: p.properties(m.Event)}
	p.mu.Lock()
	abandon := p.abandon
	p.mu.Unlock()
	// A publish in flight waits across a short cut for paho to resend it
	// on the new connection; see abandonInFlight for when it stops waiting.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Without a goroutine per publish: it cost as much as the publish.
	defer context.AfterFunc(abandon, func() { cancel(context.Cause(abandon)) })()
	resp, err := p.cm.Publish(ctx, pub)
	if resp != nil && resp.ReasonCode >= 0x80 {
		// paho reports a PUBACK's negative code as an error, a PUBREC's
		// (QoS 2) not at all.
		err := fmt.Errorf("mqtt %s: publish to %q refused: %s", p.server, pub.Topic, reasonName(resp.ReasonCode))
		if resp.ReasonCode == 0x87 {
			p.log.Error("mqtt: the broker does not authorize publishing to this topic: grant the bridge's user write access (the broker's ACL) or change BRIDGE_MQTT_TOPIC",
				"topic", pub.Topic, "event_id", m.Event.ID)
			return consumers.Pause(err)
		}
		return err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, autopaho.ConnectionDownError):
		return p.downError()
	case ctx.Err() != nil:
		return fmt.Errorf("mqtt %s: publish to %q: %w", p.server, pub.Topic, context.Cause(ctx))
	}
	return fmt.Errorf("mqtt %s: publish to %q: %w", p.server, pub.Topic, err)
}

// properties returns the PUBLISH properties of e in the configured format.
// The message expires never (no Message Expiry Interval).
func (p *mqttPublisher) properties(e router.Event) *paho.PublishProperties {
	var fields []Field
	if p.format != FormatCloudEvents {
		fields = Metadata(e)
	} else {
		// The CloudEvents MQTT binding (cloudevents/spec, bindings/
		// mqtt-protocol-binding.md, 3.1 Binary Content Mode, MQTT 5 only):
		// Content Type = datacontenttype, the data as the payload, every
		// other attribute, extensions included, a User Property under its
		// CloudEvents name unprefixed.
		fields = CloudEventAttributes(e)
	}
	user := make(paho.UserProperties, len(fields))
	for i, f := range fields {
		user[i] = paho.UserProperty{Key: f.Name, Value: f.Value}
	}
	return &paho.PublishProperties{ContentType: router.DataContentType, User: user}
}

// Ready returns nil while connected. Otherwise it returns why not; when
// the broker refused the credentials, an error for which consumers.IsPause
// is true.
func (p *mqttPublisher) Ready(context.Context) error {
	p.mu.Lock()
	connected := p.connected
	p.mu.Unlock()
	if connected {
		return nil
	}
	return p.downError()
}

// Close disconnects, waiting at most 5 s for the broker.
func (p *mqttPublisher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.cm.Disconnect(ctx)
}

// downError says why the publisher is not connected.
func (p *mqttPublisher) downError() error {
	p.mu.Lock()
	err := p.lastErr
	p.mu.Unlock()
	if err == nil {
		err = errors.New("not connected yet")
	}
	if code, ok := refusedCredentials(err); ok {
		return consumers.Pause(fmt.Errorf("mqtt %s: the broker refused the connection: %s; check the user name and password in BRIDGE_URL and the broker's ACL", p.server, reasonName(code)))
	}
	return fmt.Errorf("mqtt %s: not connected (reconnecting in the background): %w", p.server, err)
}

// errConnectionLost is why the connection is down when paho gave no reason.
var errConnectionLost = errors.New("connection lost")

// up records a connection (autopaho's connection goroutine calls up, lost
// and connectFailed in order).
func (p *mqttPublisher) up(_ *autopaho.ConnectionManager, ca *paho.Connack) {
	p.mu.Lock()
	p.connected, p.lastErr, p.lossReason = true, nil, nil
	if p.grace != nil {
		p.grace.Stop()
	}
	if !ca.SessionPresent {
		p.abandonInFlight(errors.New("the broker did not keep the session while the message was in flight"))
	}
	p.mu.Unlock()
	p.log.Info("mqtt: connected", "session_present", ca.SessionPresent)
	p.once.Do(func() { close(p.attempted) })
}

// lost records a lost connection; autopaho reconnects.
func (p *mqttPublisher) lost() bool {
	p.mu.Lock()
	p.connected = false
	p.lastErr = p.lossReason
	if p.lastErr == nil {
		p.lastErr = errConnectionLost
	}
	p.lossReason = nil
	err := p.lastErr
	p.grace = time.AfterFunc(mqttReconnectGrace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.connected {
			p.abandonInFlight(fmt.Errorf("the connection is down for more than %s", mqttReconnectGrace))
		}
	})
	p.mu.Unlock()
	p.log.Warn("mqtt: connection lost; reconnecting", "error", err)
	return true
}

// abandonInFlight fails the publishes in flight with a retryable error
// (JetStream redelivers them by the schedule; paho may still resend them on
// a later connection: a duplicate at most). They stop waiting when a
// connection comes up without the session, since paho then forgets them
// and nothing would ever answer, and when the connection stays down longer
// than mqttReconnectGrace, so a broker that is down shows as failures (the
// schedule, the breaker) rather than handlers waiting for their deadline.
// The caller holds p.mu.
func (p *mqttPublisher) abandonInFlight(why error) {
	p.abandon.cancel(why)
	p.abandon = newAbandonment()
}

// abandonment is one abandonInFlight: a context cancelled with why.
type abandonment struct {
	context.Context
	cancel context.CancelCauseFunc
}

func newAbandonment() *abandonment {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &abandonment{Context: ctx, cancel: cancel}
}

// reason records why the connection dropped. paho reports it from a
// goroutine of its own, before or after autopaho reports the loss.
func (p *mqttPublisher) reason(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected {
		p.lossReason = err
	} else if p.lastErr == errConnectionLost {
		p.lastErr = err
	}
}

// serverDisconnect records a DISCONNECT from the broker.
func (p *mqttPublisher) serverDisconnect(d *paho.Disconnect) {
	err := fmt.Errorf("the broker disconnected: %s", reasonName(d.ReasonCode))
	if d.ReasonCode == 0x8E {
		err = fmt.Errorf("%w (another client connected with the same client id, BRIDGE_MQTT_CLIENT_ID)", err)
	}
	p.reason(err)
}

// connectFailed records a failed connection attempt; it logs a change of
// reason, not every attempt.
func (p *mqttPublisher) connectFailed(err error) {
	p.mu.Lock()
	same := p.lastErr != nil && p.lastErr.Error() == err.Error()
	p.connected, p.lastErr = false, err
	p.mu.Unlock()
	if !same {
		if code, ok := refusedCredentials(err); ok {
			p.log.Error("mqtt: the broker refused the bridge's credentials: fix the user name and password in BRIDGE_URL or the broker's ACL, then resume the consumer",
				"reason", reasonName(code))
		} else {
			p.log.Warn("mqtt: cannot connect; retrying", "error", err)
		}
	}
	p.once.Do(func() { close(p.attempted) })
}

// refusedCredentials reports whether err is a CONNACK that needs a person:
// bad user name or password, not authorized, client id refused, banned,
// bad authentication method.
func refusedCredentials(err error) (byte, bool) {
	var ce *autopaho.ConnackError
	if !errors.As(err, &ce) {
		return 0, false
	}
	switch ce.ReasonCode {
	case 0x85, 0x86, 0x87, 0x8A, 0x8C:
		return ce.ReasonCode, true
	}
	return ce.ReasonCode, false
}

// reasonName names an MQTT 5 reason code for a log or an error.
func reasonName(code byte) string {
	name, ok := map[byte]string{
		0x80: "unspecified error", 0x83: "implementation specific error",
		0x85: "client identifier not valid", 0x86: "bad user name or password",
		0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy",
		0x8A: "banned", 0x8B: "server shutting down", 0x8C: "bad authentication method",
		0x8E: "session taken over", 0x90: "topic name invalid",
		0x91: "packet identifier in use", 0x93: "receive maximum exceeded", 0x95: "packet too large",
		0x97: "quota exceeded", 0x99: "payload format invalid",
	}[code]
	if !ok {
		name = "reason code"
	}
	return fmt.Sprintf("%s (0x%02X)", name, code)
}
