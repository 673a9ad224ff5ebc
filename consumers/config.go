package consumers

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is the runtime configuration of one consumer. Binaries embed it
// with their own prefix (envPrefix:"WEBHOOK_" gives WEBHOOK_ACK_WAIT, …).
type Config struct {
	Start            string        `env:"START" desc:"where a new durable starts: new, all, or an RFC 3339 time (default: webhook new, archiver and autoaccept all); cannot change later"`
	AckWait          time.Duration `env:"ACK_WAIT" envDefault:"30s" desc:"how long a delivery may stay unacknowledged before the server redelivers it (handlers send in-progress signals while they run)"`
	MaxDeliver       int           `env:"MAX_DELIVER" envDefault:"10" desc:"delivery attempts per event; after the last one the event is dead-lettered"`
	MaxAckPending    int           `env:"MAX_ACK_PENDING" envDefault:"1000" desc:"events delivered but not yet settled, including those waiting out a retry delay"`
	Concurrency      int           `env:"CONCURRENCY" envDefault:"16" desc:"events handled in parallel by this process"`
	Backoff          Schedule      `env:"BACKOFF" envDefault:"5s,30s,2m,10m,30m,1h" desc:"retry delays by attempt (the last repeats)"`
	Jitter           float64       `env:"BACKOFF_JITTER" envDefault:"0.2" desc:"random spread of each retry delay, as a fraction (0.2 = ±20%)"`
	BreakerThreshold int           `env:"BREAKER_THRESHOLD" envDefault:"5" desc:"the shortest run of consecutive failed attempts that may open the circuit breaker, which then stops this process fetching for BREAKER_COOLDOWN (0: never opens)"`
	// The circuit breaker judges distinct events: it opens when at least
	// BREAKER_FAILURE_RATIO of at least BREAKER_MIN_EVENTS distinct events
	// attempted within BREAKER_WINDOW failed.
	BreakerFailureRatio float64       `env:"BREAKER_FAILURE_RATIO" envDefault:"0.5" desc:"the share of the distinct events attempted within BREAKER_WINDOW that must have failed (their last attempt in it) for the circuit breaker to open (above 0, up to 1)"`
	BreakerMinEvents    int           `env:"BREAKER_MIN_EVENTS" envDefault:"20" desc:"the fewest distinct events attempted within BREAKER_WINDOW on which the circuit breaker may open (retries of one event count once)"`
	BreakerWindow       time.Duration `env:"BREAKER_WINDOW" envDefault:"60s" desc:"how far back the circuit breaker looks at the events attempted"`
	BreakerCooldown     time.Duration `env:"BREAKER_COOLDOWN" envDefault:"30s" desc:"how long an open circuit breaker waits before probing with one event"`
	DrainTimeout        time.Duration `env:"DRAIN_TIMEOUT" envDefault:"30s" desc:"on shutdown, how long in-flight handlers may take to finish"`
	Replicas            int           `env:"REPLICAS" envDefault:"0" desc:"replicas of the durable's state (0: as the stream; 3 in a 3-node cluster)"`
}

// Validate checks the settings; prefix is the variables' prefix (e.g.
// "WEBHOOK_") so errors name the variable.
func (c Config) Validate(prefix string) error {
	if _, _, err := c.StartPolicy(""); err != nil {
		return fmt.Errorf("%sSTART: %w", prefix, err)
	}
	switch {
	case c.AckWait < time.Second:
		return fmt.Errorf("%sACK_WAIT %s: want at least 1s", prefix, c.AckWait)
	case c.MaxDeliver < 1:
		return fmt.Errorf("%sMAX_DELIVER %d: want at least 1", prefix, c.MaxDeliver)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("%sCONCURRENCY %d: want 1 to 1024", prefix, c.Concurrency)
	case c.MaxAckPending < c.Concurrency:
		return fmt.Errorf("%sMAX_ACK_PENDING %d must be at least %sCONCURRENCY %d", prefix, c.MaxAckPending, prefix, c.Concurrency)
	case len(c.Backoff) == 0:
		return fmt.Errorf("%sBACKOFF is empty", prefix)
	case c.Jitter < 0 || c.Jitter >= 1:
		return fmt.Errorf("%sBACKOFF_JITTER %g: want 0 to below 1", prefix, c.Jitter)
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("%sREPLICAS %d: want 0 to 5", prefix, c.Replicas)
	case c.BreakerThreshold < 0:
		return fmt.Errorf("%sBREAKER_THRESHOLD %d is negative", prefix, c.BreakerThreshold)
	case c.BreakerThreshold > 0 && c.BreakerCooldown <= 0:
		return fmt.Errorf("%sBREAKER_COOLDOWN must be positive", prefix)
	case c.BreakerThreshold > 0 && !(c.BreakerFailureRatio > 0 && c.BreakerFailureRatio <= 1):
		return fmt.Errorf("%sBREAKER_FAILURE_RATIO %g: want above 0, up to 1 (0.5: half the events failed)", prefix, c.BreakerFailureRatio)
	case c.BreakerThreshold > 0 && c.BreakerMinEvents < 1:
		return fmt.Errorf("%sBREAKER_MIN_EVENTS %d: want at least 1", prefix, c.BreakerMinEvents)
	case c.BreakerThreshold > 0 && c.BreakerWindow <= 0:
		return fmt.Errorf("%sBREAKER_WINDOW %s: want a positive duration such as 60s", prefix, c.BreakerWindow)
	}
	return nil
}

// SideStreamReplicas is the replicas of the streams a consumer creates
// beside its durable (dead letters, advisories, outcomes): the durable's,
// so losing a node loses neither. Every creator must agree, since
// whichever starts first decides.
func (c Config) SideStreamReplicas() int { return max(1, c.Replicas) }

// StartPolicy returns the deliver policy of Start (def when Start is empty).
func (c Config) StartPolicy(def string) (jetstream.DeliverPolicy, *time.Time, error) {
	s := c.Start
	if s == "" {
		s = def
	}
	switch s {
	case "", "new":
		return jetstream.DeliverNewPolicy, nil, nil
	case "all":
		return jetstream.DeliverAllPolicy, nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, nil, fmt.Errorf("%q: want new, all or an RFC 3339 time", s)
	}
	return jetstream.DeliverByStartTimePolicy, &t, nil
}

// Schedule is a list of retry delays, parsed from "5s,30s,2m".
type Schedule []time.Duration

// UnmarshalText parses a comma-separated list of positive durations
// (streams.ParseDuration: days too).
func (s *Schedule) UnmarshalText(b []byte) error {
	var out Schedule
	for _, part := range strings.Split(string(b), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := streams.ParseDuration(part)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration", part)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return fmt.Errorf("no delays in %q", string(b))
	}
	*s = out
	return nil
}

// Delay returns the delay before the attempt after attempt (1-based), with
// jitter so that retries of many events do not arrive in lockstep.
func (c Config) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := c.Backoff[min(attempt, len(c.Backoff))-1]
	if c.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + c.Jitter*(2*rand.Float64()-1)))
	}
	return d
}
