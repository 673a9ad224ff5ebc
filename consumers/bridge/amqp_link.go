package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// How the AMQP link dials and backs off.
const (
	amqpDialTimeout = 10 * time.Second       // TCP, TLS and AMQP handshake together
	amqpBackoffMin  = 100 * time.Millisecond // first wait after a failure
	amqpBackoffMax  = 5 * time.Second        // longest wait between attempts
	amqpStableAfter = 10 * time.Second       // a session this old resets the backoff
	amqpCloseWait   = 5 * time.Second        // the longest wait for the broker's close-ok
)

// amqpLink keeps one connection and one channel in confirm mode to the
// broker: whenever the channel or the connection closes, it sets them up
// again in the background, with a growing wait between failed attempts,
// without restarting the process.
type amqpLink struct {
	url    string   // BRIDGE_URL with its credentials: never logged
	parsed *url.URL // the same, parsed
	broker string   // scheme://host/vhost, for logs
	cfg    amqp.Config
	log    *slog.Logger

	mu   sync.Mutex
	conn *amqp.Connection // the open connection, nil while there is none
	cur  *amqpSession     // nil while down
	down error            // why cur is nil

	// The broker's flow control (connection.blocked), guarded by mu.
	blockedConn   *amqp.Connection // the connection the broker blocks; nil: none
	blockedReason string           // the broker's reason ("low on memory")
	flowChanged   chan struct{}    // closed and replaced at every change

	ctx  context.Context // ended by close: stops dialing and waiting
	stop context.CancelFunc
	done chan struct{} // closed when run returned
}

// amqpSession is one channel on one connection; it is replaced, never
// reused, once the channel closed.
type amqpSession struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns *returnTracker
	dead    chan struct{} // closed once the channel closed; err is set before
	err     error         // why it closed (an *amqp.Error when the broker said)
}

// errNotConnected is the state before the first attempt ended.
var errNotConnected = errors.New("not connected yet")

func newAMQPLink(o Options) *amqpLink {
	u := *o.URL
	u.User = nil
	u.RawQuery = ""
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &amqpLink{
		url:    o.URL.String(),
		parsed: o.URL,
		broker: u.String(),
		log:    log.With("broker", u.String()),
		down:   errNotConnected,
		done:   make(chan struct{}),

		flowChanged: make(chan struct{}),
	}
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.cfg = amqp.Config{
		TLSClientConfig: o.TLS,
		Properties:      amqp.Table{"connection_name": o.Durable},
		Dial:            l.dial,
	}
	return l
}

// dial opens the TCP connection, bounded by amqpDialTimeout for the
// handshakes too (the library clears the deadline once the connection is
// open) and ended by close.
func (l *amqpLink) dial(network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: amqpDialTimeout}
	c, err := d.DialContext(l.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(amqpDialTimeout)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// start runs the link and returns once the first attempt to connect is
// over, whatever its outcome, or when ctx ends.
func (l *amqpLink) start(ctx context.Context) error {
	first := make(chan struct{})
	go l.run(first)
	select {
	case <-first:
		return nil
	case <-ctx.Done():
		l.close()
		return ctx.Err()
	}
}

// session returns the current session, or why there is none (wrapping the
// broker's *amqp.Error when it gave one).
func (l *amqpLink) session() (*amqpSession, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		return nil, &linkDownError{broker: l.broker, err: l.down}
	}
	return l.cur, nil
}

// linkDownError is a Publish or Ready while the link is down.
type linkDownError struct {
	broker string
	err    error
}

func (e *linkDownError) Error() string {
	return "not connected to " + e.broker + " (reconnecting in the background): " + e.err.Error()
}
func (e *linkDownError) Unwrap() error { return e.err }

// connection returns the open connection, which may be up while its
// channel is being set up again, or why there is none.
func (l *amqpLink) connection() (*amqp.Connection, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.conn.IsClosed() {
		return nil, &linkDownError{broker: l.broker, err: l.down}
	}
	return l.conn, nil
}

func (l *amqpLink) set(conn *amqp.Connection, s *amqpSession, down error) {
	l.mu.Lock()
	l.conn, l.cur, l.down = conn, s, down
	l.mu.Unlock()
}

// run connects, waits for the session to end, and connects again, until
// close.
func (l *amqpLink) run(first chan<- struct{}) {
	defer close(l.done)
	var conn *amqp.Connection
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	failures := 0
	lastErr := ""
	for {
		s, err := l.open(conn)
		if err != nil {
			conn = nil
			l.set(nil, nil, err)
			failures++
			// One line per change of reason, not one per attempt.
			if err.Error() != lastErr {
				lastErr = err.Error()
				level := slog.LevelWarn
				var ae *amqp.Error
				if errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed) {
					level = slog.LevelError
				}
				l.log.Log(l.ctx, level, "amqp: cannot connect to the broker; retrying", "error", err)
			}
		} else {
			conn = s.conn
			l.set(s.conn, s, nil)
			if failures > 0 || lastErr != "" {
				l.log.Info("amqp: connected to the broker again")
			} else {
				l.log.Info("amqp: connected to the broker")
			}
			lastErr = ""
		}
		if first != nil {
			close(first)
			first = nil
		}
		if s != nil {
			since := time.Now()
			select {
			case <-s.dead:
			case <-l.ctx.Done():
				l.set(nil, nil, amqp.ErrClosed)
				return
			}
			lastErr = s.err.Error()
			if !conn.IsClosed() {
				// The broker closed the channel alone (a publish to a
				// missing exchange, a refused permission): another one at
				// once, since only another such publish closes it again;
				// a pause first when it lived but a moment.
				l.set(conn, nil, s.err)
				l.log.Warn("amqp: the broker closed the channel; opening another", "error", s.err)
				if time.Since(since) < time.Second && !l.sleep(amqpBackoffMin) {
					l.set(nil, nil, amqp.ErrClosed)
					return
				}
				continue
			}
			conn = nil
			l.set(nil, nil, s.err)
			if time.Since(since) > amqpStableAfter {
				failures = 0
			}
			failures++
			l.log.Warn("amqp: lost the connection to the broker; reconnecting", "error", s.err)
		}
		if !l.sleep(backoff(failures)) {
			l.set(nil, nil, amqp.ErrClosed)
			return
		}
	}
}

// backoff is the wait after failures attempts in a row: doubling from
// amqpBackoffMin up to amqpBackoffMax, with jitter so that replicas do not
// reconnect in step.
func backoff(failures int) time.Duration {
	d := min(amqpBackoffMin<<min(max(failures-1, 0), 16), amqpBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d and reports whether the link is still open.
func (l *amqpLink) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// open dials when conn is nil or closed and opens a channel in confirm
// mode on it, with mandatory returns tracked.
func (l *amqpLink) open(conn *amqp.Connection) (*amqpSession, error) {
	if conn == nil || conn.IsClosed() {
		cfg := l.cfg
		if cfg.TLSClientConfig != nil {
			// The library writes ServerName into it.
			cfg.TLSClientConfig = cfg.TLSClientConfig.Clone()
		}
		var err error
		if conn, err = amqp.DialConfig(l.url, cfg); err != nil {
			return nil, scrub(err, l.parsed)
		}
		// Buffered, and followFlow takes each at once: the library's reader
		// waits for the hand-over (5 s at most, then drops it).
		go l.followFlow(conn, conn.NotifyBlocked(make(chan amqp.Blocking, 1)))
	}
	fail := func(err error) (*amqpSession, error) {
		closeConn(conn)
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	if err := ch.Confirm(false); err != nil {
		return fail(err)
	}
	s := &amqpSession{conn: conn, ch: ch, dead: make(chan struct{})}
	// Unbuffered: the library hands a return over before it reads the
	// confirm that follows it (see returnTracker).
	s.returns = newReturnTracker(ch.NotifyReturn(make(chan amqp.Return)))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		if e := <-closes; e != nil {
			s.err = e
		} else {
			s.err = amqp.ErrClosed
		}
		close(s.dead)
	}()
	return s, nil
}

// closeConn closes conn, waiting amqpCloseWait at most for the broker's
// answer: a broker that blocks the connection reads nothing, and a close
// without a deadline would wait for the alarm to clear.
func closeConn(conn *amqp.Connection) {
	conn.CloseDeadline(time.Now().Add(amqpCloseWait))
}

// followFlow keeps what the broker says of its flow control of conn
// (connection.blocked and connection.unblocked) until conn closed, when
// the library closes blocks. RabbitMQ blocks a connection that publishes
// while a memory or disk alarm is on: it stops reading from it (what was
// sent waits in the socket for the alarm to clear), and says so once.
func (l *amqpLink) followFlow(conn *amqp.Connection, blocks <-chan amqp.Blocking) {
	for b := range blocks {
		l.setFlow(conn, b.Active, b.Reason)
	}
	l.setFlow(conn, false, "")
}

func (l *amqpLink) setFlow(conn *amqp.Connection, blocked bool, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case blocked:
		l.blockedConn, l.blockedReason = conn, reason
	case l.blockedConn == conn:
		l.blockedConn, l.blockedReason = nil, ""
	default:
		return // another connection's: no change
	}
	close(l.flowChanged)
	l.flowChanged = make(chan struct{})
}

// blocked returns nil when the broker lets the link publish, else why not
// (wrapping ErrBlocked); and a channel closed at the next change.
func (l *amqpLink) blocked() (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blockedConn == nil {
		return l.flowChanged, nil
	}
	return l.flowChanged, fmt.Errorf("amqp: %w: %q (a memory or disk alarm on the broker: free memory or disk there; events wait until it clears)", ErrBlocked, l.blockedReason)
}

// scrub takes BRIDGE_URL's password out of err's text, should a library
// error ever quote the URL.
func scrub(err error, u *url.URL) error {
	p, ok := u.User.Password()
	if !ok || p == "" || !strings.Contains(err.Error(), p) {
		return err
	}
	return &scrubbedError{text: strings.ReplaceAll(err.Error(), p, "xxxxx"), err: err}
}

// scrubbedError is an error whose text lost a password; errors.As still
// finds the broker's *amqp.Error in it.
type scrubbedError struct {
	text string
	err  error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

// closeReason is why the session's channel refused or dropped a message:
// the broker's reason for closing it once it is closed, else err.
func (s *amqpSession) closeReason(ctx context.Context, err error) error {
	if !s.ch.IsClosed() {
		return err
	}
	select {
	case <-s.dead:
		return s.err
	case <-ctx.Done():
		return err
	}
}

// close stops the link and closes the connection.
func (l *amqpLink) close() error {
	l.stop()
	<-l.done
	return nil
}

// returnTracker matches the messages the broker hands back (published
// mandatory, no queue took them) with the Publish calls waiting for their
// confirms, by message id (the event's ce-id).
//
// One goroutine owns the bookkeeping, which closes a race: the library
// hands a return to that goroutine before it reads the confirm of the same
// message, and a Publish that got its confirm asks the same goroutine,
// which answers only after it recorded the return it took.
type returnTracker struct {
	ask  chan returnAsk
	gone chan struct{} // closed when the channel closed: nothing more comes back
}

type returnOp int

const (
	returnExpect returnOp = iota // a message with this id is about to be published
	returnForget                 // its Publish gave up
	returnTake                   // its confirm came: was it returned?
)

type returnAsk struct {
	op    returnOp
	id    string
	reply chan *amqp.Return // returnTake only
}

func newReturnTracker(in <-chan amqp.Return) *returnTracker {
	t := &returnTracker{ask: make(chan returnAsk), gone: make(chan struct{})}
	go t.run(in)
	return t
}

func (t *returnTracker) run(in <-chan amqp.Return) {
	defer close(t.gone)
	type slot struct {
		waiting  int
		returned []amqp.Return
	}
	pending := map[string]*slot{}
	for {
		select {
		case r, ok := <-in:
			if !ok {
				return
			}
			if s := pending[r.MessageId]; s != nil {
				s.returned = append(s.returned, r)
			}
		case a := <-t.ask:
			s := pending[a.id]
			switch a.op {
			case returnExpect:
				if s == nil {
					s = &slot{}
					pending[a.id] = s
				}
				s.waiting++
				continue
			case returnTake:
				var r *amqp.Return
				if s != nil && len(s.returned) > 0 {
					r = &s.returned[0]
					s.returned = s.returned[1:]
				}
				a.reply <- r
			}
			if s != nil {
				if s.waiting--; s.waiting <= 0 {
					delete(pending, a.id)
				}
			}
		}
	}
}

func (t *returnTracker) send(a returnAsk) bool {
	select {
	case t.ask <- a:
		return true
	case <-t.gone:
		return false
	}
}

// expect registers a message about to be published.
func (t *returnTracker) expect(id string) { t.send(returnAsk{op: returnExpect, id: id}) }

// forget drops a registration whose Publish gave up.
func (t *returnTracker) forget(id string) { t.send(returnAsk{op: returnForget, id: id}) }

// returned reports the return of a message whose confirm came, nil when
// the broker routed it, and drops its registration.
func (t *returnTracker) returned(id string) *amqp.Return {
	reply := make(chan *amqp.Return, 1)
	if !t.send(returnAsk{op: returnTake, id: id, reply: reply}) {
		return nil
	}
	return <-reply
}
