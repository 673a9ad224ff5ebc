package consumers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// Each consumer process publishes its state (its circuit breaker, the
// events in flight, its last success) to the key-value bucket
// ENMESHED_CONSUMERS under <durable>.<instance>, every StateHeartbeat and
// at once when its breaker opens or closes. The bucket keeps a key
// StateTTL after its last write, so a process that dies without cleaning
// up (SIGKILL, a lost machine) drops out by itself; a graceful stop
// deletes its key. `eventmesh status` reads the bucket: a breaker is local
// to a process, and only this tells it across processes.
const (
	// StateHeartbeat is how often a process publishes its state.
	StateHeartbeat = 5 * time.Second
	// StateTTL is how long the bucket keeps a key after its last write:
	// four heartbeats, so one or two lost writes do not drop a process.
	StateTTL = 4 * StateHeartbeat
)

// ProcessState is the JSON value of one key of ENMESHED_CONSUMERS: the
// state of one process of a durable (see docs/contract.md).
type ProcessState struct {
	Durable  string `json:"durable"`
	Instance string `json:"instance"` // random per process, the key's second token
	Host     string `json:"host"`     // os.Hostname, for a person
	PID      int    `json:"pid"`
	// Started is when the process started consuming.
	Started time.Time `json:"started"`
	// Updated is when this state was written; HeartbeatSeconds is how
	// often it is (StateHeartbeat).
	Updated          time.Time `json:"updated"`
	HeartbeatSeconds float64   `json:"heartbeat_seconds"`
	// Breaker is "open" or "closed"; BreakerSince is when it last opened
	// or closed (Started when it never changed).
	Breaker      string    `json:"breaker"`
	BreakerSince time.Time `json:"breaker_since"`
	// InFlight is the events its handlers are working on.
	InFlight int64 `json:"in_flight"`
	// LastSuccess is its last acknowledged handling (null: none yet).
	LastSuccess *time.Time `json:"last_success"`
}

// Breaker states of ProcessState.Breaker.
const (
	BreakerOpen   = "open"
	BreakerClosed = "closed"
)

// StateKey is the key of a process's state: <durable>.<instance>.
func StateKey(durable, instance string) string { return durable + "." + instance }

// stateBucket is the definition of ENMESHED_CONSUMERS; replicas as the
// other side streams.
func stateBucket(replicas int, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      streams.ConsumersBucket,
		Description: "eventmesh: the state of each consumer process (circuit breaker, in flight, last success), for status",
		Storage:     jetstream.FileStorage,
		History:     1,
		TTL:         ttl,
		Replicas:    replicas,
	}
}

// presence publishes this process's state to ENMESHED_CONSUMERS.
type presence struct {
	instance    string
	heartbeat   time.Duration
	inFlight    atomic.Int64
	lastSuccess atomic.Int64 // Unix ns; 0: none yet
}

func newPresence() *presence {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return &presence{instance: hex.EncodeToString(b[:]), heartbeat: StateHeartbeat}
}

// succeeded records a handled event.
func (p *presence) succeeded(now time.Time) { p.lastSuccess.Store(now.UnixNano()) }

// publishState runs until ctx ends, then deletes the key: publishing
// every heartbeat, and at once when the breaker opens or closes. The
// bucket is created when missing; while it cannot be reached (or the
// account's permissions lack it) delivery goes on and the next heartbeat
// tries again: the state is for status, never a reason to stop.
func (r *Runtime) publishState(ctx context.Context) {
	p := r.presence
	host, _ := os.Hostname()
	base := ProcessState{Durable: r.opt.Name, Instance: p.instance, Host: host, PID: os.Getpid(),
		Started: r.now().UTC(), HeartbeatSeconds: p.heartbeat.Seconds()}
	key := StateKey(r.opt.Name, p.instance)
	var kv jetstream.KeyValue
	var last ProcessState // the last state written (Updated zero: none yet)
	failing := false
	poll := time.NewTicker(min(p.heartbeat, 250*time.Millisecond))
	defer poll.Stop()
	for {
		s := r.processState(base)
		if r.now().Sub(last.Updated) >= p.heartbeat || s.Breaker != last.Breaker || !s.BreakerSince.Equal(last.BreakerSince) {
			err := r.putState(ctx, &kv, key, s)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				r.log.Warn("cannot publish this process's state to "+streams.ConsumersBucket+" (status will not see its breaker); retrying",
					"err", err)
				failing = true
			case err == nil && failing:
				r.log.Info("publishing this process's state to " + streams.ConsumersBucket + " again")
				failing = false
			}
			last = s
		}
		select {
		case <-ctx.Done():
			if kv != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				if err := kv.Delete(dctx, key); err != nil {
					r.log.Warn("could not delete this process's state from "+streams.ConsumersBucket+" (it expires by itself)", "err", err)
				}
				cancel()
			}
			return
		case <-poll.C:
		}
	}
}

// processState is base with the breaker's state and the counters, as of
// now.
func (r *Runtime) processState(base ProcessState) ProcessState {
	s := base
	s.Updated = r.now().UTC()
	open, since := r.breaker.state()
	s.Breaker, s.BreakerSince = BreakerClosed, s.Started
	if open {
		s.Breaker = BreakerOpen
	}
	if !since.IsZero() {
		s.BreakerSince = since.UTC()
	}
	s.InFlight = r.presence.inFlight.Load()
	if ns := r.presence.lastSuccess.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		s.LastSuccess = &t
	}
	return s
}

// putState writes s under key, opening the bucket (*kv) first when
// needed; one attempt, within a heartbeat (at most 5 s).
func (r *Runtime) putState(ctx context.Context, kv *jetstream.KeyValue, key string, s ProcessState) error {
	if *kv == nil {
		b, err := r.stateBucket(ctx)
		if err != nil {
			return err
		}
		*kv = b
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, min(r.presence.heartbeat, 5*time.Second))
	defer cancel()
	_, err = (*kv).Put(pctx, key, b)
	return err
}

// stateBucket opens ENMESHED_CONSUMERS, creating it when missing. An
// existing bucket is used as it is: whichever process starts first
// decides its settings.
func (r *Runtime) stateBucket(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := r.js.KeyValue(ctx, streams.ConsumersBucket)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = r.js.CreateKeyValue(ctx, stateBucket(r.cfg.SideStreamReplicas(), 4*r.presence.heartbeat))
	if errors.Is(err, jetstream.ErrBucketExists) { // another process created it meanwhile
		return r.js.KeyValue(ctx, streams.ConsumersBucket)
	}
	return kv, err
}

// ProcessStates reads ENMESHED_CONSUMERS: the published states of every
// consumer process, by durable, each durable's sorted by instance. States
// older than the bucket's TTL (a process that died, not yet expired by
// the server) are left out, by the server's clock. Without the bucket (no
// consumer of this version ran yet) the map is empty.
func ProcessStates(ctx context.Context, js jetstream.JetStream) (map[string][]ProcessState, error) {
	out := map[string][]ProcessState{}
	st, err := js.Stream(ctx, stateStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", streams.ConsumersBucket, err)
	}
	// The keys are the subjects the bucket's stream holds (a deleted
	// key's marker too, until it expires): no watcher needed.
	si, err := st.Info(ctx, jetstream.WithSubjectFilter(stateSubjects+">"))
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", streams.ConsumersBucket, err)
	}
	ttl := si.Config.MaxAge
	if ttl <= 0 {
		ttl = StateTTL
	}
	now := si.TimeStamp
	if now.IsZero() {
		now = time.Now()
	}
	for subject := range si.State.Subjects {
		m, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("bucket %s: key %s: %w", streams.ConsumersBucket, strings.TrimPrefix(subject, stateSubjects), err)
		}
		if op := m.Header.Get("KV-Operation"); op != "" || now.Sub(m.Time) > ttl {
			continue // deleted on a graceful stop (DEL), purged, or stale
		}
		var s ProcessState
		if err := json.Unmarshal(m.Data, &s); err != nil || s.Durable == "" {
			continue // not written by a consumer runtime
		}
		out[s.Durable] = append(out[s.Durable], s)
	}
	for _, ss := range out {
		slices.SortFunc(ss, func(a, b ProcessState) int { return strings.Compare(a.Instance, b.Instance) })
	}
	return out, nil
}

// The stream behind ENMESHED_CONSUMERS, and the prefix of its subjects
// ($KV.<bucket>.<key>).
const (
	stateStream   = "KV_" + streams.ConsumersBucket
	stateSubjects = "$KV." + streams.ConsumersBucket + "."
)
