// Package streams holds the JetStream definitions of the mesh (streams,
// their configuration and idempotent setup) and the NATS connection options.
// The embedded server lives in streams/embedded so that only cmd/eventmesh
// links nats-server.
package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names (DESIGN.md, "Subjects and streams").
const (
	Events     = "ENMESHED"
	DLQ        = "ENMESHED_DLQ"
	Advisories = "ENMESHED_ADVISORIES"
	Outcomes   = "ENMESHED_OUTCOMES"
	SyncBucket = "ENMESHED_SYNC"
	// ConsumersBucket is the key-value bucket where each consumer process
	// publishes its state (consumers.ProcessState).
	ConsumersBucket = "ENMESHED_CONSUMERS"
)

// PrefixConfig is the subject prefix, read by every binary.
type PrefixConfig struct {
	Prefix string `env:"SUBJECT_PREFIX" envDefault:"enmeshed" desc:"first subject token of every event (one token: letters, digits, _ and -)"`
}

// Subjects returns the subject scheme, or an error naming SUBJECT_PREFIX.
func (c PrefixConfig) Subjects() (router.Subjects, error) {
	s, err := router.NewSubjects(c.Prefix)
	if err != nil {
		return s, fmt.Errorf("SUBJECT_PREFIX: %w", err)
	}
	return s, nil
}

// Validate checks SUBJECT_PREFIX.
func (c PrefixConfig) Validate() error { _, err := c.Subjects(); return err }

// StreamConfig is the configuration of the ENMESHED stream. Only the
// producer (and eventmesh) reads it: they own the stream.
type StreamConfig struct {
	Replicas        int           `env:"STREAM_REPLICAS" envDefault:"1" desc:"replicas of the ENMESHED stream (1, 3 or 5; more than 1 needs a cluster)"`
	MaxAge          time.Duration `env:"STREAM_MAX_AGE" envDefault:"168h" desc:"how long an event stays in the stream (a consumer down for longer loses events)"`
	MaxBytes        ByteSize      `env:"STREAM_MAX_BYTES" envDefault:"1GiB" desc:"size limit of the stream; when full, ingest answers 503 instead of dropping stored events"`
	DuplicateWindow time.Duration `env:"STREAM_DUPLICATE_WINDOW" envDefault:"10m" desc:"how long the stream remembers event ids to drop a second copy of an event"`
	WarnRatio       float64       `env:"STREAM_WARN_RATIO" envDefault:"0.8" desc:"used fraction of the stream's size limit from which eventmesh status reports it filling (exit 1) and the producer logs a warning (above 0, at most 1)"`
}

// Validate checks the stream settings; errors name the variable.
func (c StreamConfig) Validate() error {
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("STREAM_REPLICAS %d: want 1 to 5", c.Replicas)
	case c.MaxAge < time.Minute:
		return fmt.Errorf("STREAM_MAX_AGE %s: want at least 1m", c.MaxAge)
	case c.MaxBytes < 1<<20:
		return fmt.Errorf("STREAM_MAX_BYTES %s: want at least 1MiB", c.MaxBytes)
	case c.DuplicateWindow < time.Second:
		return fmt.Errorf("STREAM_DUPLICATE_WINDOW %s: want at least 1s", c.DuplicateWindow)
	case !(c.WarnRatio > 0 && c.WarnRatio <= 1): // NaN too
		return fmt.Errorf("STREAM_WARN_RATIO %g: want above 0 and at most 1", c.WarnRatio)
	case c.DuplicateWindow > c.MaxAge:
		// The server refuses a window longer than the age limit.
		return fmt.Errorf("STREAM_DUPLICATE_WINDOW %s must not exceed STREAM_MAX_AGE %s", c.DuplicateWindow, c.MaxAge)
	}
	return nil
}

// EventsStream returns the definition of ENMESHED: file storage, limits
// retention (every consumer reads every event), DiscardNew (a full stream
// refuses new events rather than silently dropping unconsumed ones), and
// STREAM_WARN_RATIO in its metadata (WarnRatioKey) for status to read (a
// zero WarnRatio is DefaultWarnRatio).
func EventsStream(s router.Subjects, c StreamConfig) jetstream.StreamConfig {
	warn := c.WarnRatio
	if warn == 0 {
		warn = DefaultWarnRatio
	}
	return jetstream.StreamConfig{
		Name:        Events,
		Description: "eventmesh: every event (" + s.Events() + ") and replays aimed at one consumer (" + s.AllReplays() + ")",
		Subjects:    []string{s.Events(), s.AllReplays()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      c.MaxAge,
		MaxBytes:    int64(c.MaxBytes),
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		Metadata:    map[string]string{WarnRatioKey: strconv.FormatFloat(warn, 'g', -1, 64)},
	}
}

// ErrConflict is wrapped when an existing stream differs from its
// definition in a field that cannot be changed in place.
var ErrConflict = errors.New("stream conflicts with its definition")

// EnsureStream creates the stream of want, or updates an existing one in
// the fields that may change (max age, max bytes, replicas, duplicate
// window, discard policy, description, the metadata keys of want). A difference in storage, retention
// or subjects stops with an error naming the field. Calling it again with
// the same definition changes nothing.
func EnsureStream(ctx context.Context, js jetstream.StreamManager, want jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	st, created, err := lookupOrCreate(ctx, js, want)
	if err != nil || created {
		if created {
			log.Info("stream created", "stream", want.Name, "subjects", want.Subjects)
		}
		return st, err
	}
	have := st.CachedInfo().Config
	if err := immutableDiff(have, want); err != nil {
		return nil, err
	}
	upd := have
	upd.Description = want.Description
	upd.MaxAge = want.MaxAge
	upd.MaxBytes = want.MaxBytes
	upd.Replicas = want.Replicas
	upd.Duplicates = want.Duplicates
	upd.Discard = want.Discard
	upd.Metadata = userMetadata(have.Metadata)
	for k, v := range want.Metadata {
		if upd.Metadata == nil {
			upd.Metadata = map[string]string{}
		}
		upd.Metadata[k] = v
	}
	if changes := mutableDiff(have, upd); len(changes) > 0 {
		if st, err = js.UpdateStream(ctx, upd); err != nil {
			return nil, fmt.Errorf("update stream %s (%s): %w", want.Name, strings.Join(changes, ", "), err)
		}
		log.Info("stream updated", "stream", want.Name, "changes", strings.Join(changes, ", "))
	}
	return st, nil
}

// lookupOrCreate returns the stream of want, creating it when missing
// (created=true). When another process creates it at the same moment, it
// waits for that stream to be visible and returns it: in a cluster a
// lookup can answer "not found" while a create already answers "in use",
// and going back and forth between the two would spin.
func lookupOrCreate(ctx context.Context, js jetstream.StreamManager, want jetstream.StreamConfig) (jetstream.Stream, bool, error) {
	st, err := js.Stream(ctx, want.Name)
	if err == nil {
		return st, false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	st, err = js.CreateStream(ctx, want)
	if err == nil {
		return st, true, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, false, fmt.Errorf("create stream %s: %w", want.Name, err)
	}
	for attempt := 1; ; attempt++ {
		if st, err = js.Stream(ctx, want.Name); err == nil {
			return st, false, nil
		}
		if attempt >= 50 {
			return nil, false, fmt.Errorf("stream %s is being created by another process but did not appear: %w", want.Name, err)
		}
		if !Sleep(ctx, min(time.Duration(attempt)*50*time.Millisecond, time.Second)) {
			return nil, false, ctx.Err()
		}
	}
}

// EnsureFixedStream creates a stream with a fixed definition if it is
// missing and leaves an existing one alone unless it conflicts in storage,
// retention or subjects. Consumer binaries use it for the streams they may
// create but do not own.
func EnsureFixedStream(ctx context.Context, js jetstream.StreamManager, want jetstream.StreamConfig) (jetstream.Stream, error) {
	st, created, err := lookupOrCreate(ctx, js, want)
	if err != nil || created {
		return st, err
	}
	if err := immutableDiff(st.CachedInfo().Config, want); err != nil {
		return nil, err
	}
	return st, nil
}

func immutableDiff(have, want jetstream.StreamConfig) error {
	field := func(name string, h, w any) error {
		return fmt.Errorf("%w: stream %s has %s %v but eventmesh needs %v; %s cannot be changed in place: "+
			"delete the stream (nats stream rm %s) after draining it, or point eventmesh at another server",
			ErrConflict, want.Name, name, h, w, name, want.Name)
	}
	switch {
	case have.Storage != want.Storage:
		return field("storage", have.Storage, want.Storage)
	case have.Retention != want.Retention:
		return field("retention", have.Retention, want.Retention)
	}
	hs, ws := slices.Sorted(slices.Values(have.Subjects)), slices.Sorted(slices.Values(want.Subjects))
	if !slices.Equal(hs, ws) {
		return fmt.Errorf("%w: stream %s has subjects %v but eventmesh needs %v (was SUBJECT_PREFIX changed?); "+
			"subjects are not changed automatically: restore SUBJECT_PREFIX, or edit the stream with the nats CLI",
			ErrConflict, want.Name, have.Subjects, want.Subjects)
	}
	return nil
}

func mutableDiff(have, want jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, h, w any) { d = append(d, fmt.Sprintf("%s %v → %v", name, h, w)) }
	if have.Description != want.Description {
		add("description", have.Description, want.Description)
	}
	if have.MaxAge != want.MaxAge {
		add("max age", have.MaxAge, want.MaxAge)
	}
	if have.MaxBytes != want.MaxBytes {
		add("max bytes", have.MaxBytes, want.MaxBytes)
	}
	if have.Replicas != want.Replicas {
		add("replicas", have.Replicas, want.Replicas)
	}
	if have.Duplicates != want.Duplicates {
		add("duplicate window", have.Duplicates, want.Duplicates)
	}
	if have.Discard != want.Discard {
		add("discard", have.Discard, want.Discard)
	}
	for _, k := range slices.Sorted(maps.Keys(want.Metadata)) {
		if have.Metadata[k] != want.Metadata[k] {
			add("metadata "+k, have.Metadata[k], want.Metadata[k])
		}
	}
	return d
}

// userMetadata drops the server's own _nats.* keys, which it writes into
// every config: comparing with them would make every start look like a change.
func userMetadata(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if strings.HasPrefix(k, "_nats.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// RestoreDiscard sets the discard policy of the existing stream st to want
// in place when it differs (the one field of a fixed definition that is
// brought back: a DLQ created with DiscardOld by an earlier version drops
// its oldest dead letters when full). It returns the stream as it is now.
func RestoreDiscard(ctx context.Context, js jetstream.StreamManager, st jetstream.Stream, want jetstream.DiscardPolicy, log *slog.Logger) (jetstream.Stream, error) {
	have := st.CachedInfo().Config
	if have.Discard == want {
		return st, nil
	}
	upd := have
	upd.Discard = want
	upd.Metadata = userMetadata(have.Metadata)
	st, err := js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("update stream %s (discard %v → %v): %w", have.Name, have.Discard, want, err)
	}
	log.Info("stream updated", "stream", have.Name, "changes", fmt.Sprintf("discard %v → %v", have.Discard, want))
	return st, nil
}

// DLQStream is ENMESHED_DLQ: dead-letter copies on <prefix>-dlq.<consumer>.<namespace>,
// kept 30 days for an operator to inspect and replay. At 512 MiB it is
// full and refuses new dead letters (DiscardNew: none is ever dropped); the
// consumers hold their events until there is room.
func DLQStream(s router.Subjects) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DLQ,
		Description: "eventmesh: dead letters, one copy per consumer that gave up on an event",
		Subjects:    []string{s.AllDLQ()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      30 * 24 * time.Hour,
		MaxBytes:    512 << 20,
		Duplicates:  10 * time.Minute,
	}
}

// AdvisorySubject is the max-deliveries advisory of one consumer on
// ENMESHED ("*" for all of them).
func AdvisorySubject(consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + Events + "." + consumer
}

// AdvisoriesStream is ENMESHED_ADVISORIES: the server's max-deliveries
// advisories for ENMESHED's consumers, captured because an advisory nobody
// hears is lost. Kept a day: the consumer runtime reads them at once.
func AdvisoriesStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Advisories,
		Description: "eventmesh: max-deliveries advisories of ENMESHED consumers",
		Subjects:    []string{AdvisorySubject("*")},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      24 * time.Hour,
		MaxBytes:    64 << 20,
	}
}

// OutcomesStream is ENMESHED_OUTCOMES: batched outcome records of the
// consumers, for the archiver.
func OutcomesStream(s router.Subjects) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Outcomes,
		Description: "eventmesh: what each consumer did with each event (batched)",
		Subjects:    []string{s.AllOutcomes()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      7 * 24 * time.Hour,
		MaxBytes:    512 << 20,
	}
}
