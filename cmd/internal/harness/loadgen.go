package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// LoadGen posts Connector-shaped events to an ingest endpoint from Clients
// concurrent clients, at Rate events per second or flat out, and records
// every event id that got a 2xx.
//
// The Connector itself never retries a webhook; its operator does, so the
// load generator retries as one would: a 5xx or a connection error is
// posted again, same body (so same event id: the stream's duplicate window
// makes the retry harmless), after a growing, jittered delay, until it
// gets a 2xx, RetryFor has passed, or MaxAttempts were made. A 4xx is not
// retried (the request itself is wrong).
type LoadGen struct {
	// URL is the ingest base URL, e.g. http://127.0.0.1:8080; events go
	// to URL + "/events".
	URL string
	// Events is how many events to post (required).
	Events int
	// Event returns event i; default MessageReceived("load", i, 0).
	Event func(i int) Event
	// Clients is the number of concurrent posting clients; default 4.
	Clients int
	// Rate is the offered rate in events per second over all clients;
	// 0 posts flat out. While every client is busy retrying, the offered
	// rate drops (a Connector does not queue either).
	Rate float64
	// RetryFor bounds how long one event is retried; default 2m.
	RetryFor time.Duration
	// MaxAttempts bounds the posts of one event; 0: no bound but RetryFor.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the retry delay, which doubles from
	// MinBackoff (default 50ms) up to MaxBackoff (default 1s), ±25 %.
	MinBackoff, MaxBackoff time.Duration
	// Header is added to every request (e.g. the ingest API key).
	Header http.Header
	// Client is the HTTP client; default one with a 30s timeout and
	// keep-alive connections for every posting client.
	Client *http.Client

	mu       sync.Mutex
	accepted map[string]time.Time // id → when ingest answered 2xx
	stats    LoadStats
	start    time.Time
	done     chan struct{}
	cancel   context.CancelFunc
}

// LoadStats is what the load generator saw.
type LoadStats struct {
	Offered    int           // events whose first post was made
	Accepted   int           // events that got a 2xx (distinct ids)
	Duplicates int           // 2xx answers saying "duplicate" (a retry of an event already stored)
	Requests   int           // POSTs made, retries included
	Retried5xx int           // 5xx answers retried
	RetriedNet int           // connection errors and timeouts retried
	Rejected   int           // events answered 4xx (not retried)
	GaveUp     int           // events that never got a 2xx within RetryFor / MaxAttempts
	Status     map[int]int   // answers by status code
	Errors     []string      // the first few rejections and give-ups, for the log
	Elapsed    time.Duration // from Start until the last event was settled
}

// Rate returns accepted events per second over Elapsed.
func (s LoadStats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Accepted) / s.Elapsed.Seconds()
}

func (s LoadStats) String() string {
	codes := make([]int, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", s.Status[c], c))
	}
	return fmt.Sprintf("offered %d, accepted %d (%.0f/s, %d answered duplicate), %d requests [%s], retried %d 5xx and %d connection errors, rejected %d, gave up %d, in %s",
		s.Offered, s.Accepted, s.Rate(), s.Duplicates, s.Requests, strings.Join(parts, " "), s.Retried5xx, s.RetriedNet, s.Rejected, s.GaveUp, s.Elapsed.Round(time.Millisecond))
}

const maxLoggedErrors = 10

// Start starts posting in the background; Wait waits for the end. Stop
// stops offering new events while those in flight finish their retries;
// ctx ending also ends the retries.
func (g *LoadGen) Start(ctx context.Context) {
	if g.Event == nil {
		g.Event = func(i int) Event { return MessageReceived("load", i, 0) }
	}
	if g.Clients <= 0 {
		g.Clients = 4
	}
	if g.RetryFor <= 0 {
		g.RetryFor = 2 * time.Minute
	}
	if g.MinBackoff <= 0 {
		g.MinBackoff = 50 * time.Millisecond
	}
	if g.MaxBackoff < g.MinBackoff {
		g.MaxBackoff = max(time.Second, g.MinBackoff)
	}
	if g.Client == nil {
		g.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: g.Clients}}
	}
	g.accepted = make(map[string]time.Time, g.Events)
	g.stats = LoadStats{Status: map[int]int{}}
	g.start = time.Now()
	g.done = make(chan struct{})
	offer, cancel := context.WithCancel(ctx)
	g.cancel = cancel

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range g.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				g.post(ctx, i)
			}
		}()
	}
	go func() {
		defer close(jobs)
		var tick *time.Ticker
		if g.Rate > 0 {
			tick = time.NewTicker(time.Duration(float64(time.Second) / g.Rate))
			defer tick.Stop()
		}
		for i := range g.Events {
			if tick != nil {
				select {
				case <-tick.C:
				case <-offer.Done():
					return
				}
			}
			select {
			case jobs <- i:
			case <-offer.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		g.mu.Lock()
		g.stats.Elapsed = time.Since(g.start)
		g.mu.Unlock()
		g.Client.CloseIdleConnections()
		close(g.done)
	}()
}

// post posts event i until it gets a 2xx or the retry budget is spent.
func (g *LoadGen) post(ctx context.Context, i int) {
	body := g.Event(i).Body()
	g.mu.Lock()
	g.stats.Offered++
	g.mu.Unlock()
	deadline := time.Now().Add(g.RetryFor)
	backoff := g.MinBackoff
	var last string
	for attempt := 1; ; attempt++ {
		status, reply, err := g.once(body)
		g.mu.Lock()
		g.stats.Requests++
		if err == nil {
			g.stats.Status[status]++
		}
		g.mu.Unlock()
		switch {
		case err == nil && status/100 == 2:
			var r struct{ ID, Status string }
			if jerr := json.Unmarshal(reply, &r); jerr != nil || r.ID == "" {
				g.fail(&g.stats.Rejected, fmt.Sprintf("event %d: %d without an id: %.200s", i, status, reply))
				return
			}
			g.mu.Lock()
			if _, seen := g.accepted[r.ID]; !seen {
				g.accepted[r.ID] = time.Now()
			}
			g.stats.Accepted = len(g.accepted)
			if r.Status == "duplicate" {
				g.stats.Duplicates++
			}
			g.mu.Unlock()
			return
		case err == nil && status/100 == 4:
			g.fail(&g.stats.Rejected, fmt.Sprintf("event %d: %d %.200s", i, status, reply))
			return
		}
		// A 5xx or no answer: retry, if the budget allows.
		if err == nil {
			last = fmt.Sprintf("%d %.200s", status, reply)
		} else {
			last = err.Error()
		}
		if (g.MaxAttempts > 0 && attempt >= g.MaxAttempts) || time.Now().After(deadline) || ctx.Err() != nil {
			g.fail(&g.stats.GaveUp, fmt.Sprintf("event %d: no 2xx after %d attempts: %s", i, attempt, last))
			return
		}
		g.mu.Lock()
		if err == nil {
			g.stats.Retried5xx++
		} else {
			g.stats.RetriedNet++
		}
		g.mu.Unlock()
		d := time.Duration(float64(backoff) * (0.75 + 0.5*rand.Float64()))
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, g.MaxBackoff)
	}
}

func (g *LoadGen) fail(counter *int, msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*counter++
	if len(g.stats.Errors) < maxLoggedErrors {
		g.stats.Errors = append(g.stats.Errors, msg)
	}
}

func (g *LoadGen) once(body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, g.URL+"/events", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range g.Header {
		req.Header[k] = v
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, reply, nil
}

// Stop stops offering new events.
func (g *LoadGen) Stop() {
	if g.cancel != nil {
		g.cancel()
	}
}

// Wait waits until every offered event is settled (accepted, rejected or
// given up) and returns the stats.
func (g *LoadGen) Wait() LoadStats {
	<-g.done
	return g.Stats()
}

// Done is closed when the run has ended.
func (g *LoadGen) Done() <-chan struct{} { return g.done }

// Stats returns the stats so far.
func (g *LoadGen) Stats() LoadStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Status = make(map[int]int, len(g.stats.Status))
	for k, v := range g.stats.Status {
		s.Status[k] = v
	}
	s.Errors = append([]string(nil), g.stats.Errors...)
	if s.Elapsed == 0 && !g.start.IsZero() {
		s.Elapsed = time.Since(g.start)
	}
	return s
}

// Accepted returns the number of events that got a 2xx so far.
func (g *LoadGen) Accepted() int { g.mu.Lock(); defer g.mu.Unlock(); return len(g.accepted) }

// AcceptedIDs returns the ids of the events that got a 2xx, with when.
func (g *LoadGen) AcceptedIDs() map[string]time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]time.Time, len(g.accepted))
	for id, t := range g.accepted {
		out[id] = t
	}
	return out
}
