package router

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix of every event (SUBJECT_PREFIX).
const DefaultPrefix = "enmeshed"

// Limits of a trigger (an event namespace) before it becomes subject tokens.
const (
	MaxTriggerTokens = 16
	MaxTriggerBytes  = 256
)

// TriggerPlaceholder in a webhook URL is replaced by the event's trigger
// (its namespace), as the Connector's webhooks module does, so a receiver
// written for `https://host/hooks/{{trigger}}` keeps working.
const TriggerPlaceholder = "{{trigger}}"

// ErrInvalidTrigger is wrapped by every trigger validation error.
var ErrInvalidTrigger = errors.New("invalid trigger")

// ErrInvalidToken is wrapped by every subject-token validation error.
var ErrInvalidToken = errors.New("invalid subject token")

// ValidateTrigger checks that trigger (an event namespace such as
// transport.messageReceived) can become subject tokens: tokens of ASCII
// letters, digits, '_' and '-', separated by single dots, at most
// MaxTriggerTokens tokens and MaxTriggerBytes bytes. Wildcards, white space
// and empty tokens are rejected, so data can never widen a subject.
func ValidateTrigger(trigger string) error {
	if trigger == "" {
		return fmt.Errorf("%w: trigger is empty", ErrInvalidTrigger)
	}
	if len(trigger) > MaxTriggerBytes {
		return fmt.Errorf("%w: trigger is %d bytes long, at most %d are allowed", ErrInvalidTrigger, len(trigger), MaxTriggerBytes)
	}
	tokens, start := 1, 0
	for i := 0; i <= len(trigger); i++ {
		if i < len(trigger) && trigger[i] != '.' {
			if !tokenByte(trigger[i]) {
				return fmt.Errorf("%w: %q: character %q at byte %d is not allowed (only ASCII letters, digits, '_' and '-' between dots)", ErrInvalidTrigger, trigger, rune(trigger[i]), i)
			}
			continue
		}
		if i == start {
			return fmt.Errorf("%w: %q: empty token at byte %d", ErrInvalidTrigger, trigger, i)
		}
		if i < len(trigger) {
			tokens++
		}
		start = i + 1
	}
	if tokens > MaxTriggerTokens {
		return fmt.Errorf("%w: %q has %d tokens, at most %d are allowed", ErrInvalidTrigger, trigger, tokens, MaxTriggerTokens)
	}
	return nil
}

// ValidateToken checks that s is one subject token of ASCII letters, digits,
// '_' and '-' (a durable name, a connector id in a URL, a subject prefix).
func ValidateToken(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(s) > MaxTriggerBytes {
		return fmt.Errorf("%w: %d bytes long, at most %d are allowed", ErrInvalidToken, len(s), MaxTriggerBytes)
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return fmt.Errorf("%w: %q: character %q at byte %d is not allowed (only ASCII letters, digits, '_' and '-')", ErrInvalidToken, s, rune(s[i]), i)
		}
	}
	return nil
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Subjects is the subject scheme under one prefix. The zero value is not
// valid; use NewSubjects.
type Subjects struct {
	prefix string
}

// NewSubjects returns the scheme for prefix (one subject token).
func NewSubjects(prefix string) (Subjects, error) {
	if err := ValidateToken(prefix); err != nil {
		return Subjects{}, fmt.Errorf("subject prefix: %w", err)
	}
	return Subjects{prefix: prefix}, nil
}

// MustSubjects is NewSubjects for constants and tests; it panics on error.
func MustSubjects(prefix string) Subjects {
	s, err := NewSubjects(prefix)
	if err != nil {
		panic(err)
	}
	return s
}

// Prefix returns the prefix, e.g. "enmeshed".
func (s Subjects) Prefix() string { return s.prefix }

// Event returns <prefix>.<namespace>, the subject of a new event.
func (s Subjects) Event(namespace string) string { return s.prefix + "." + namespace }

// Events returns <prefix>.>, every event subject.
func (s Subjects) Events() string { return s.prefix + ".>" }

// Replay returns <prefix>-replay.<durable>.<namespace>: a replayed event that
// reaches the consumer named durable only.
func (s Subjects) Replay(durable, namespace string) string {
	return s.prefix + "-replay." + durable + "." + namespace
}

// Replays returns <prefix>-replay.<durable>.>, the replay filter of durable.
func (s Subjects) Replays(durable string) string { return s.prefix + "-replay." + durable + ".>" }

// AllReplays returns <prefix>-replay.>, every replay subject.
func (s Subjects) AllReplays() string { return s.prefix + "-replay.>" }

// DLQ returns <prefix>-dlq.<consumer>.<namespace>.
func (s Subjects) DLQ(consumer, namespace string) string {
	return s.prefix + "-dlq." + consumer + "." + namespace
}

// AllDLQ returns <prefix>-dlq.>, the subjects of ENMESHED_DLQ.
func (s Subjects) AllDLQ() string { return s.prefix + "-dlq.>" }

// DLQFor returns <prefix>-dlq.<consumer>.>, one consumer's dead letters.
func (s Subjects) DLQFor(consumer string) string { return s.prefix + "-dlq." + consumer + ".>" }

// Outcome returns <prefix>-outcome.<consumer>.
func (s Subjects) Outcome(consumer string) string { return s.prefix + "-outcome." + consumer }

// AllOutcomes returns <prefix>-outcome.>, the subjects of ENMESHED_OUTCOMES.
func (s Subjects) AllOutcomes() string { return s.prefix + "-outcome.>" }

// IsReplay reports whether subject is a replay subject, <prefix>-replay.….
func (s Subjects) IsReplay(subject string) bool {
	rest, ok := strings.CutPrefix(subject, s.prefix)
	return ok && strings.HasPrefix(rest, "-replay.")
}

// SubjectMatch reports whether subject matches the NATS filter: "*" is one
// token, a final ">" one or more.
func SubjectMatch(filter, subject string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		if ft == ">" {
			return subject != ""
		}
		st, srest, smore := strings.Cut(subject, ".")
		if st == "" || (ft != "*" && ft != st) {
			return false
		}
		if !fmore || !smore {
			return fmore == smore
		}
		filter, subject = frest, srest
	}
}

// Namespace returns the namespace of an event, replay or dead-letter subject
// ("enmeshed.transport.x", "enmeshed-replay.webhook-1.transport.x" and
// "enmeshed-dlq.webhook-1.transport.x" all give "transport.x"), and false for
// a subject outside the scheme.
func (s Subjects) Namespace(subject string) (string, bool) {
	if rest, ok := strings.CutPrefix(subject, s.prefix+"."); ok && rest != "" {
		return rest, true
	}
	for _, kind := range [...]string{"-replay.", "-dlq."} {
		if rest, ok := strings.CutPrefix(subject, s.prefix+kind); ok {
			if _, ns, ok := strings.Cut(rest, "."); ok && ns != "" {
				return ns, true
			}
		}
	}
	return "", false
}
