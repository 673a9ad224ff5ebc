package harness

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/consumers/webhook"
)

// Receiver is a webhook endpoint on loopback that verifies every request's
// Standard Webhooks signature, counts deliveries per webhook-id (= ce-id)
// — unique and duplicate — with their arrival times, and injects faults:
// a random error rate, outages, slow answers and poison events.
//
// Answers, in this order: 503 during an outage in OutageUnavailable mode
// (in OutageRefuse mode nothing listens at all); 401 for a bad signature;
// 400 for a poison event; then, after the configured delay, 500 at the
// error rate; else 204, and the request counts as a delivery.
type Receiver struct {
	// URL is the endpoint to set as WEBHOOK_URL (http://127.0.0.1:port/hook).
	URL string

	secret string
	addr   string

	mu         sync.Mutex
	srv        *http.Server
	ln         net.Listener
	rng        *rand.Rand
	errRate    float64
	delay      time.Duration
	down       OutageMode
	downTimer  *time.Timer
	upErr      error // of the last Up called by Outage's timer
	poison     func(id string) bool
	header     string // CountHeader
	deliveries map[string]int
	first      map[string]time.Time
	last       map[string]time.Time
	byHeader   map[string]int
	stats      ReceiverStats
}

// OutageMode is how the receiver is down.
type OutageMode int

const (
	// Up: no outage.
	Up OutageMode = iota
	// OutageRefuse closes the listener (and open connections): connection
	// refused, as for a receiver whose process is gone.
	OutageRefuse
	// OutageUnavailable keeps listening and answers every request 503, as
	// a receiver behind a load balancer with no healthy backend.
	OutageUnavailable
)

// ReceiverStats counts the requests a receiver answered, by answer.
type ReceiverStats struct {
	Requests      int // every request answered
	Delivered     int // answered 2xx: deliveries, duplicates included
	Unique        int // distinct webhook-ids delivered
	Duplicates    int // deliveries beyond the first of an id
	BadSignature  int // answered 401
	Poisoned      int // answered 400 (poison)
	Injected500   int // answered 500 by the error rate
	Unavailable   int // answered 503 during an outage
	OutageWindows int // outages begun
}

// NewReceiver starts a receiver verifying signatures with secret (one
// whsec_… secret, as WEBHOOK_SECRET) on a free loopback port. With an
// empty secret it checks no signature: a bare endpoint, as the benchmark's
// ceilings have.
func NewReceiver(secret string) (*Receiver, error) {
	if secret != "" {
		if _, err := webhook.ParseSecrets(secret); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{secret: secret, addr: ln.Addr().String(),
		rng:        rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		deliveries: map[string]int{}, first: map[string]time.Time{}, last: map[string]time.Time{},
		byHeader: map[string]int{}}
	r.URL = "http://" + r.addr + "/hook"
	r.serve(ln)
	return r, nil
}

func (r *Receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 10 * time.Second}
	r.srv, r.ln = srv, ln
	go srv.Serve(ln)
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	id := req.Header.Get(webhook.HeaderID)
	r.mu.Lock()
	r.stats.Requests++
	if r.down == OutageUnavailable {
		r.stats.Unavailable++
		r.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if r.secret != "" && webhook.Verify(r.secret, req.Header, body, 5*time.Minute, now) != nil {
		r.stats.BadSignature++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.poison != nil && r.poison(id) {
		r.stats.Poisoned++
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"poison event: this receiver never accepts it"}`)
		return
	}
	delay := r.delay
	fail := r.errRate > 0 && r.rng.Float64() < r.errRate
	r.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay) // the receiver's slow work
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fail {
		r.stats.Injected500++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	at := time.Now()
	r.deliveries[id]++
	if r.deliveries[id] == 1 {
		r.first[id] = at
	} else {
		r.stats.Duplicates++
	}
	r.last[id] = at
	r.stats.Delivered++
	if r.header != "" {
		r.byHeader[req.Header.Get(r.header)]++
	}
	w.WriteHeader(http.StatusNoContent)
}

// SetErrorRate makes the receiver answer 500 to a random fraction p of
// the requests it would otherwise accept (0.3: 30 %).
func (r *Receiver) SetErrorRate(p float64) { r.mu.Lock(); r.errRate = p; r.mu.Unlock() }

// SetDelay makes every answer take d (a slow receiver).
func (r *Receiver) SetDelay(d time.Duration) { r.mu.Lock(); r.delay = d; r.mu.Unlock() }

// SetPoison makes the receiver answer 400 — a permanent failure — to every
// request whose webhook-id is poison(id).
func (r *Receiver) SetPoison(poison func(id string) bool) {
	r.mu.Lock()
	r.poison = poison
	r.mu.Unlock()
}

// CountHeader counts deliveries by the value of request header name
// (e.g. X-Process, set per process with WEBHOOK_HEADERS); see ByHeader.
func (r *Receiver) CountHeader(name string) { r.mu.Lock(); r.header = name; r.mu.Unlock() }

// Down starts an outage in mode until Up is called.
func (r *Receiver) Down(mode OutageMode) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down != Up {
		return errors.New("receiver: already down")
	}
	if mode == Up {
		return nil
	}
	r.down = mode
	r.stats.OutageWindows++
	if mode == OutageRefuse {
		r.srv.Close() // the listener and every open connection
	}
	return nil
}

// Outage takes the receiver down in mode for d, then brings it back up.
func (r *Receiver) Outage(mode OutageMode, d time.Duration) error {
	if err := r.Down(mode); err != nil {
		return err
	}
	r.mu.Lock()
	r.downTimer = time.AfterFunc(d, func() {
		err := r.Up()
		r.mu.Lock()
		r.upErr = err
		r.mu.Unlock()
	})
	r.mu.Unlock()
	return nil
}

// Up ends an outage: the receiver listens again on the same address.
func (r *Receiver) Up() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downTimer != nil {
		r.downTimer.Stop()
		r.downTimer = nil
	}
	mode := r.down
	r.down = Up
	if mode != OutageRefuse {
		return nil
	}
	// The port was ours a moment ago; another process may grab it in
	// between, so retry for a while before giving up.
	var err error
	for try := 0; try < 100; try++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			r.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("receiver: listen again on %s: %w", r.addr, err)
}

// Err returns the error of coming back up after an Outage (the port
// taken meanwhile), or nil.
func (r *Receiver) Err() error { r.mu.Lock(); defer r.mu.Unlock(); return r.upErr }

// IsDown reports whether an outage is on.
func (r *Receiver) IsDown() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.down != Up }

// Stats returns the counts so far.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Unique = len(r.deliveries)
	return s
}

// Deliveries returns a copy of the delivery count per webhook-id.
func (r *Receiver) Deliveries() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.deliveries))
	for id, n := range r.deliveries {
		out[id] = n
	}
	return out
}

// Delivered reports whether id was delivered at least once.
func (r *Receiver) Delivered(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveries[id] > 0
}

// Arrivals returns, per delivered webhook-id, when it first and last
// arrived.
func (r *Receiver) Arrivals() (first, last map[string]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first = make(map[string]time.Time, len(r.first))
	last = make(map[string]time.Time, len(r.last))
	for id, t := range r.first {
		first[id] = t
	}
	for id, t := range r.last {
		last[id] = t
	}
	return first, last
}

// ByHeader returns the deliveries per value of the CountHeader header.
func (r *Receiver) ByHeader() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.byHeader))
	for v, n := range r.byHeader {
		out[v] = n
	}
	return out
}

// Close stops the receiver.
func (r *Receiver) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downTimer != nil {
		r.downTimer.Stop()
	}
	r.srv.Close()
}
