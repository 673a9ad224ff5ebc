package streams_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func defaults() streams.StreamConfig {
	return streams.StreamConfig{Replicas: 1, MaxAge: 168 * time.Hour, MaxBytes: 32 << 20, DuplicateWindow: 10 * time.Minute, WarnRatio: 0.8}
}

func TestEnsureEventsStream(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx := context.Background()
	log := natstest.Logger(t)
	s := router.MustSubjects("enmeshed")

	st, err := streams.EnsureStream(ctx, js, streams.EventsStream(s, defaults()), log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Storage != jetstream.FileStorage || cfg.Retention != jetstream.LimitsPolicy || cfg.Discard != jetstream.DiscardNew ||
		cfg.MaxAge != 168*time.Hour || cfg.Duplicates != 10*time.Minute || cfg.MaxBytes != 32<<20 {
		t.Errorf("stream config = %+v", cfg)
	}
	if strings.Join(cfg.Subjects, " ") != "enmeshed.> enmeshed-replay.>" {
		t.Errorf("subjects = %v", cfg.Subjects)
	}

	// Idempotent: the same definition again leaves the stream as it is
	// (the server's _nats.* metadata must not look like a change).
	before, _ := js.Stream(ctx, streams.Events)
	if _, err := streams.EnsureStream(ctx, js, streams.EventsStream(s, defaults()), log); err != nil {
		t.Fatal(err)
	}
	after, _ := js.Stream(ctx, streams.Events)
	if !after.CachedInfo().Created.Equal(before.CachedInfo().Created) {
		t.Error("stream was recreated")
	}

	// Mutable fields are updated in place.
	c := defaults()
	c.MaxAge, c.DuplicateWindow, c.MaxBytes = 48*time.Hour, time.Minute, 64<<20
	st, err = streams.EnsureStream(ctx, js, streams.EventsStream(s, c), log)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config; got.MaxAge != 48*time.Hour || got.Duplicates != time.Minute || got.MaxBytes != 64<<20 {
		t.Errorf("not updated: %+v", got)
	}

	// Someone switched discard to old: restored, since a full stream must refuse, not drop.
	cfg = st.CachedInfo().Config
	cfg.Discard = jetstream.DiscardOld
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	st, _ = streams.EnsureStream(ctx, js, streams.EventsStream(s, c), log)
	if st.CachedInfo().Config.Discard != jetstream.DiscardNew {
		t.Error("discard policy not restored")
	}

	// A different prefix means different subjects: an error naming the field, no change.
	_, err = streams.EnsureStream(ctx, js, streams.EventsStream(router.MustSubjects("other"), c), log)
	if !errors.Is(err, streams.ErrConflict) || !strings.Contains(err.Error(), "subjects") || !strings.Contains(err.Error(), "SUBJECT_PREFIX") {
		t.Errorf("subject conflict: %v", err)
	}
}

// STREAM_WARN_RATIO lives in ENMESHED's metadata, where status reads it;
// a new ratio is written in place, and the server's own keys stay out of
// the comparison.
func TestWarnRatioInMetadata(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx := context.Background()
	s := router.MustSubjects("enmeshed")
	st, err := streams.EnsureStream(ctx, js, streams.EventsStream(s, defaults()), natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := streams.WarnRatio(st.CachedInfo().Config); got != 0.8 {
		t.Errorf("warn ratio = %g (metadata %v)", got, st.CachedInfo().Config.Metadata)
	}
	c := defaults()
	c.WarnRatio = 0.65
	if st, err = streams.EnsureStream(ctx, js, streams.EventsStream(s, c), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	if got := streams.WarnRatio(st.CachedInfo().Config); got != 0.65 {
		t.Errorf("warn ratio after the update = %g", got)
	}
	if got := streams.WarnRatio(jetstream.StreamConfig{}); got != streams.DefaultWarnRatio {
		t.Errorf("warn ratio of a stream without metadata = %g", got)
	}
}

// The fill state: ok below the warn ratio, filling from it, full when
// less room is left than one average message (DiscardNew never lets a
// stream reach 100 % exactly) or at the message limit; without a byte
// limit the ratio is by messages, without any limit 0.
func TestFillOf(t *testing.T) {
	info := func(msgs, bytes uint64, maxBytes, maxMsgs int64) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Config: jetstream.StreamConfig{MaxBytes: maxBytes, MaxMsgs: maxMsgs},
			State: jetstream.StreamState{Msgs: msgs, Bytes: bytes}}
	}
	for name, tc := range map[string]struct {
		info  *jetstream.StreamInfo
		ratio float64
		state string
	}{
		"empty":            {info(0, 0, 1000, -1), 0, streams.FillOK},
		"65%":              {info(65, 650, 1000, -1), 0.65, streams.FillOK},
		"at the ratio":     {info(80, 800, 1000, -1), 0.8, streams.FillFilling},
		"99.99%":           {info(9999, 999900, 1000000, -1), 0.9999, streams.FillFilling},
		"one message left": {info(99, 990, 1000, -1), 0.99, streams.FillFilling},
		"less than one":    {info(99, 991, 1000, -1), 0.991, streams.FillFull},
		"100%":             {info(100, 1000, 1000, -1), 1, streams.FillFull},
		"msgs only":        {info(50, 1<<30, -1, 100), 0.5, streams.FillOK},
		"msgs at limit":    {info(100, 1<<30, -1, 100), 1, streams.FillFull},
		"unlimited":        {info(100, 1<<30, -1, -1), 0, streams.FillOK},
	} {
		f := streams.FillOf(tc.info, 0.8)
		if math.Abs(f.Ratio-tc.ratio) > 1e-9 || f.State != tc.state {
			t.Errorf("%s: ratio %g state %s, want %g %s", name, f.Ratio, f.State, tc.ratio, tc.state)
		}
	}
}

// ENMESHED_DLQ refuses new entries when full; one an earlier version
// created with DiscardOld is switched in place, keeping its entries.
func TestRestoreDiscard(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx := context.Background()
	s := router.MustSubjects("enmeshed")
	def := streams.DLQStream(s)
	if def.Discard != jetstream.DiscardNew {
		t.Errorf("DLQ definition discards %v", def.Discard)
	}
	old := def
	old.Discard = jetstream.DiscardOld
	st, err := js.CreateStream(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.DLQFor("c")+".ns", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if st, err = streams.RestoreDiscard(ctx, js, st, def.Discard, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo(); got.Config.Discard != jetstream.DiscardNew || got.State.Msgs != 1 {
		t.Errorf("after RestoreDiscard: discard %v, %d entries", got.Config.Discard, got.State.Msgs)
	}
}

func TestEnsureStreamConflictNamesField(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx := context.Background()
	s := router.MustSubjects("enmeshed")
	for _, tc := range []struct {
		field  string
		change func(*jetstream.StreamConfig)
	}{
		{"storage", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
		{"retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			existing := streams.EventsStream(s, defaults())
			tc.change(&existing)
			if _, err := js.CreateStream(ctx, existing); err != nil {
				t.Fatal(err)
			}
			defer js.DeleteStream(ctx, streams.Events)
			_, err := streams.EnsureStream(ctx, js, streams.EventsStream(s, defaults()), natstest.Logger(t))
			if !errors.Is(err, streams.ErrConflict) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("err = %v, want a conflict naming %s", err, tc.field)
			}
		})
	}
}

func TestStreamConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*streams.StreamConfig)
		want   string
	}{
		"replicas":  {func(c *streams.StreamConfig) { c.Replicas = 0 }, "STREAM_REPLICAS"},
		"max age":   {func(c *streams.StreamConfig) { c.MaxAge = time.Second }, "STREAM_MAX_AGE"},
		"max bytes": {func(c *streams.StreamConfig) { c.MaxBytes = 10 }, "STREAM_MAX_BYTES"},
		"window":    {func(c *streams.StreamConfig) { c.DuplicateWindow = 200 * time.Hour }, "STREAM_DUPLICATE_WINDOW"},
		"warn zero": {func(c *streams.StreamConfig) { c.WarnRatio = 0 }, "STREAM_WARN_RATIO"},
		"warn > 1":  {func(c *streams.StreamConfig) { c.WarnRatio = 1.5 }, "STREAM_WARN_RATIO"},
		"warn NaN":  {func(c *streams.StreamConfig) { c.WarnRatio = math.NaN() }, "STREAM_WARN_RATIO"},
	} {
		c := defaults()
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	if err := defaults().Validate(); err != nil {
		t.Error(err)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]streams.ByteSize{"1048576": 1 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "2 MB": 2e6, "7B": 7} {
		var b streams.ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("%q = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "10XB", "99999999999TiB"} {
		var b streams.ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
	if s := streams.ByteSize(1 << 30).String(); s != "1GiB" {
		t.Errorf("String = %s", s)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://user:s3cret@host:4222": "nats://REDACTED@host:4222",
		"nats://user:s3cret@n1:4222,nats://user:s3cret@n2:4222, tls://t0ken@n3:4222": "nats://REDACTED@n1:4222,nats://REDACTED@n2:4222,tls://REDACTED@n3:4222",
		"nats://n1:4222,nats://n2:4222":                                              "nats://n1:4222,nats://n2:4222",
		"nats://user:s3cret@n1:4222,%zz":                                             "nats://REDACTED@n1:4222,(unparsable URL)",
	} {
		got := streams.Redact(in)
		if got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "t0ken") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
