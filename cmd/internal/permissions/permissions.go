// Package permissions derives the least NATS permissions of each binary
// (eventmesh permissions). Only eventmesh imports it: it names the durables
// of every consumer, so it imports their packages.
package permissions

import (
	"fmt"
	"strings"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/autoaccept"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
)

// Set is the NATS subjects one binary may publish to and subscribe to: the
// least it needs to run, every JetStream API subject scoped to the stream
// (and durable) it works on, no ">" or "$JS.API.>". For returns it; ServerConfig renders them for a nats-server configuration:
//
//	authorization {
//	  users = [
//	    { user: webhook, password: $WEBHOOK_PASSWORD, permissions: { ... } }
//	  ]
//	}
//
// It holds for the binaries as they are: the default JetStream API prefix
// ($JS.API, no domain) and the default inbox prefix (_INBOX).
type Set struct {
	Publish   []string
	Subscribe []string
}

// The binaries For knows.
const (
	BinaryProducer   = "producer"
	BinaryWebhook    = "webhook"
	BinaryAutoAccept = "autoaccept"
	BinaryArchiver   = "archiver"
	BinaryBridge     = "bridge"
	// BinaryStatus is not a binary but the read-only side of `eventmesh
	// status` (and a console's status page): what admin.Status reads.
	BinaryStatus = "status"
)

// Inbox is where nats.go receives the replies to its requests: JetStream
// API answers, publish acknowledgements and pulled messages. Every binary
// subscribes to it and none publishes to it. Any user allowed to subscribe
// to _INBOX.> can read the replies of the others in its account; the
// binaries use no custom inbox prefix that would narrow it.
const Inbox = "_INBOX.>"

// For returns the permissions of binary (BinaryProducer, BinaryWebhook,
// BinaryAutoAccept, BinaryArchiver, BinaryBridge, or BinaryStatus for
// `eventmesh status`) under the subject scheme s. durable
// is the webhook consumer's durable name (webhook.Config.DurableName():
// WEBHOOK_DURABLE or the name derived from WEBHOOK_URL), required for the
// webhook, or the bridge's (bridge.Config.DurableName()), required for the
// bridge; the auto-accept consumer and the archiver have fixed durables
// ("" or their name), the producer and status none (""). One process with several
// consumers (eventmesh) needs the union.
//
// The producer's include the sync poller's (account info and the
// ENMESHED_SYNC bucket); without CONNECTOR_URL those go unused.
func For(binary string, s router.Subjects, durable string) (Set, error) {
	if err := router.ValidateToken(s.Prefix()); err != nil {
		return Set{}, fmt.Errorf("permissions: subject prefix: %w", err)
	}
	fixed := func(name string) error {
		if durable != "" && durable != name {
			return fmt.Errorf("permissions: the %s durable is always %q, not %q", binary, name, durable)
		}
		return nil
	}
	var pub []string
	switch binary {
	case BinaryProducer:
		if durable != "" {
			return Set{}, fmt.Errorf("permissions: the producer has no durable (got %q)", durable)
		}
		pub = producerPublish(s)
	case BinaryWebhook, BinaryBridge:
		if durable == "" {
			v := strings.ToUpper(binary)
			return Set{}, fmt.Errorf("permissions: the %s consumer needs its durable name (%s_DURABLE, or the one derived from %s_URL)", binary, v, v)
		}
		if err := router.ValidateToken(durable); err != nil {
			return Set{}, fmt.Errorf("permissions: durable: %w", err)
		}
		// The bridge is the consumer runtime and its broker: it needs of
		// NATS what the webhook consumer needs, nothing more.
		pub = runtimePublish(s, durable, true, true)
	case BinaryAutoAccept:
		if err := fixed(autoaccept.Name); err != nil {
			return Set{}, err
		}
		pub = runtimePublish(s, autoaccept.Name, true, true)
	case BinaryArchiver:
		if err := fixed(archiver.Name); err != nil {
			return Set{}, err
		}
		// No outcomes of its own (the archive is its outcome), and no
		// pause: a store error is retried, never a reason to pause.
		pub = append(runtimePublish(s, archiver.Name, false, false), archiverPublish()...)
	case BinaryStatus:
		if durable != "" {
			return Set{}, fmt.Errorf("permissions: status reads every durable, it takes none (got %q)", durable)
		}
		pub = statusPublish()
	default:
		return Set{}, fmt.Errorf("permissions: unknown binary %q (want %s, %s, %s, %s, %s or %s)",
			binary, BinaryProducer, BinaryWebhook, BinaryAutoAccept, BinaryArchiver, BinaryBridge, BinaryStatus)
	}
	return Set{Publish: pub, Subscribe: []string{Inbox}}, nil
}

// jsAPI is a JetStream API subject: $JS.API.<tokens joined by dots>.
func jsAPI(tokens ...string) string { return "$JS.API." + strings.Join(tokens, ".") }

// jsAcks are the subjects that settle (ack, nak, in-progress, term) the
// messages of durable on stream: the reply subjects the server puts on
// them. nats-server 2.15 writes $JS.ACK.<stream>.<durable>.<5 numbers>; with
// its feature flag js_ack_fc_v2 (not yet the default) it writes
// $JS.ACK.<domain>.<account hash>.<stream>.<durable>.<numbers>…
func jsAcks(stream, durable string) []string {
	return []string{
		"$JS.ACK." + stream + "." + durable + ".>",
		"$JS.ACK.*.*." + stream + "." + durable + ".>",
	}
}

// kvStream is the stream behind a key-value bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// producerPublish is what the producer (producing.Start) and its sync
// poller publish.
func producerPublish(s router.Subjects) []string {
	return []string{
		// EnsureStream looks ENMESHED up (and so does /readyz), creates it
		// when missing and updates what may change: the producer owns it.
		jsAPI("STREAM.INFO", streams.Events),
		jsAPI("STREAM.CREATE", streams.Events),
		jsAPI("STREAM.UPDATE", streams.Events),
		// The events, <prefix>.<namespace>; not the replay subjects
		// (<prefix>-replay.…), which only the admin commands write.
		s.Events(),
		// The sync poller's CreateOrUpdateKeyValue: nats.go asks for the
		// account info first, then tries an update and creates the bucket's
		// stream when it is missing.
		jsAPI("INFO"),
		jsAPI("STREAM.UPDATE", kvStream(streams.SyncBucket)),
		jsAPI("STREAM.CREATE", kvStream(streams.SyncBucket)),
		// Before each round the poller looks the bucket up, to set it up
		// again when it was deleted while the producer ran.
		jsAPI("STREAM.INFO", kvStream(streams.SyncBucket)),
		// Reading a key: a bucket nats.go creates allows direct gets, so
		// Get asks DIRECT.GET.<stream>.<key subject>, not STREAM.MSG.GET.
		jsAPI("DIRECT.GET", kvStream(streams.SyncBucket), "$KV."+streams.SyncBucket, ">"),
		// Writing a key is a publish on $KV.<bucket>.<key>.
		"$KV." + streams.SyncBucket + ".>",
	}
}

// runtimePublish is what the consumer runtime (consumers.Runtime) of the
// durable d publishes; outcomes when it records outcomes, pause when its
// handler may ask to pause the consumer.
func runtimePublish(s router.Subjects, d string, outcomes, pause bool) []string {
	advisories := consumers.AdvisoryDurable(d)
	p := []string{
		// setup waits for ENMESHED, which only the producer creates, and
		// catchAdvisories reads it (Stream.GetMsg) through this handle.
		jsAPI("STREAM.INFO", streams.Events),
		// setup's EnsureFixedStream: look up the streams the runtime may
		// create, and create them when missing. With the streams created
		// beforehand (by an operator or another binary) the CREATE entries
		// go unused and may be dropped.
		jsAPI("STREAM.INFO", streams.DLQ),
		jsAPI("STREAM.CREATE", streams.DLQ),
		// setup's RestoreDiscard: a DLQ created by an earlier version
		// (discard old) is switched to discard new, once.
		jsAPI("STREAM.UPDATE", streams.DLQ),
		jsAPI("STREAM.INFO", streams.Advisories),
		jsAPI("STREAM.CREATE", streams.Advisories),
	}
	if outcomes {
		p = append(p, jsAPI("STREAM.INFO", streams.Outcomes), jsAPI("STREAM.CREATE", streams.Outcomes))
	}
	p = append(p,
		// ensureDurable reads the durable's config (start, ack policy,
		// pause) and watch its pending counts.
		jsAPI("CONSUMER.INFO", streams.Events, d),
		// CreateOrUpdateConsumer of the durable. It filters on several
		// subjects (its events and its replays), so nats.go sends the
		// request without a filter token.
		jsAPI("CONSUMER.CREATE", streams.Events, d),
		// Consume and the breaker's probe Fetch: pull requests.
		jsAPI("CONSUMER.MSG.NEXT", streams.Events, d),
	)
	// Settling each event: Ack, NakWithDelay, InProgress, TermWithReason.
	p = append(p, jsAcks(streams.Events, d)...)
	p = append(p,
		// catchAdvisories: the durable <d>-advisories on
		// ENMESHED_ADVISORIES. It has one filter subject, which nats.go
		// puts into the create subject.
		jsAPI("CONSUMER.CREATE", streams.Advisories, advisories, streams.AdvisorySubject(d)),
		jsAPI("CONSUMER.MSG.NEXT", streams.Advisories, advisories),
	)
	p = append(p, jsAcks(streams.Advisories, advisories)...)
	p = append(p,
		// catchAdvisories fetches the event an advisory names by its
		// sequence (ENMESHED does not allow direct gets).
		jsAPI("STREAM.MSG.GET", streams.Events),
		// Dead-letter copies, <prefix>-dlq.<d>.<namespace>: its own only.
		s.DLQFor(d),
	)
	if outcomes {
		// Batched outcome records, <prefix>-outcome.<d>.
		p = append(p, s.Outcome(d))
	}
	p = append(p,
		// publishState: the process's state in the bucket
		// ENMESHED_CONSUMERS, which it looks up and creates when missing
		// (nats.go's CreateKeyValue asks for the account info first), then
		// writes under <d>.<instance> every heartbeat and deletes on stop.
		jsAPI("STREAM.INFO", kvStream(streams.ConsumersBucket)),
		jsAPI("INFO"),
		jsAPI("STREAM.CREATE", kvStream(streams.ConsumersBucket)),
		"$KV."+streams.ConsumersBucket+"."+d+".*",
	)
	if pause {
		// A handler that needs a person (410 Gone, a rejected API key)
		// pauses the durable on the server. Listing the durables after a
		// pause found no durable (CONSUMER.LIST) is not granted: the error
		// then says the listing failed.
		p = append(p, jsAPI("CONSUMER.PAUSE", streams.Events, d))
	}
	return p
}

// archiverPublish is what the archiver adds to its runtime's.
func archiverPublish() []string {
	outcomes := archiver.OutcomesDurable
	p := []string{
		// readOutcomes: ensure ENMESHED_OUTCOMES (the consumers may not
		// have run yet) and read it through the durable archiver-outcomes,
		// which has no filter.
		jsAPI("STREAM.INFO", streams.Outcomes),
		jsAPI("STREAM.CREATE", streams.Outcomes),
		jsAPI("CONSUMER.CREATE", streams.Outcomes, outcomes),
		jsAPI("CONSUMER.MSG.NEXT", streams.Outcomes, outcomes),
	}
	p = append(p, jsAcks(streams.Outcomes, outcomes)...)
	// The filters of the other consumers on ENMESHED, to flag events no
	// one subscribed to (consumers.Durables): their configs, paged.
	return append(p, jsAPI("CONSUMER.LIST", streams.Events))
}

// statusPublish is what admin.Status (`eventmesh status`) asks: all of it
// reads.
func statusPublish() []string {
	return []string{
		// ENMESHED's size and limits, and its oldest pending and never
		// delivered events of each durable (by sequence and subject).
		jsAPI("STREAM.INFO", streams.Events),
		jsAPI("STREAM.MSG.GET", streams.Events),
		// The durables, twice: consumers.Durables.
		jsAPI("CONSUMER.LIST", streams.Events),
		// Dead letters per durable: the DLQ's per-subject counts.
		jsAPI("STREAM.INFO", streams.DLQ),
		// The processes' states: the bucket's keys (its stream's
		// subjects), then each key's last value.
		jsAPI("STREAM.INFO", kvStream(streams.ConsumersBucket)),
		jsAPI("DIRECT.GET", kvStream(streams.ConsumersBucket), "$KV."+streams.ConsumersBucket, ">"),
	}
}

// maxAligned is the widest quoted subject ServerConfig aligns comments to.
const maxAligned = 64

// ServerConfig renders p as a nats-server permissions block, each subject
// with a comment saying what it is for, to paste into a user entry of an
// authorization block (see Set).
func (p Set) ServerConfig() string {
	// Comments line up, except after the few very long subjects.
	width := 0
	for _, s := range append(append([]string(nil), p.Publish...), p.Subscribe...) {
		if len(s)+2 <= maxAligned {
			width = max(width, len(s)+2)
		}
	}
	var b strings.Builder
	section := func(name string, subjects []string) {
		fmt.Fprintf(&b, "  %s: {\n    allow: [\n", name)
		for _, s := range subjects {
			q := `"` + s + `"`
			if why := describe(s); why != "" {
				fmt.Fprintf(&b, "      %-*s  # %s\n", width, q, why)
			} else {
				fmt.Fprintf(&b, "      %s\n", q)
			}
		}
		b.WriteString("    ]\n  }\n")
	}
	b.WriteString("permissions: {\n")
	section("publish", p.Publish)
	section("subscribe", p.Subscribe)
	b.WriteString("}\n")
	return b.String()
}

// describe says what a subject of For is for ("" when it does
// not know the subject).
func describe(subject string) string {
	if subject == Inbox {
		return "replies to its requests: API answers, publish acks, pulled messages"
	}
	if rest, ok := strings.CutPrefix(subject, "$JS.API."); ok {
		return describeAPI(rest)
	}
	if rest, ok := strings.CutPrefix(subject, "$JS.ACK."); ok {
		toks := strings.Split(rest, ".")
		if len(toks) >= 5 && toks[0] == "*" && toks[1] == "*" {
			return "the same in the v2 ack format (nats-server feature flag js_ack_fc_v2)"
		}
		if len(toks) >= 3 {
			return "settle (ack, nak, in progress, term) messages of durable " + toks[1] + " on " + toks[0]
		}
		return ""
	}
	if rest, ok := strings.CutPrefix(subject, "$KV."); ok {
		bucket, _, _ := strings.Cut(rest, ".")
		if bucket == streams.ConsumersBucket {
			return "its processes' states in bucket " + bucket + " (written every heartbeat, deleted on stop)"
		}
		return "write keys of bucket " + bucket
	}
	first, rest, _ := strings.Cut(subject, ".")
	switch {
	case strings.HasSuffix(first, "-dlq"):
		return "dead-letter copies into " + streams.DLQ + " (its own durable's only)"
	case strings.HasSuffix(first, "-outcome"):
		return "batched outcome records into " + streams.Outcomes
	case rest == ">":
		return "events into " + streams.Events
	}
	return ""
}

func describeAPI(rest string) string {
	kinds := []struct{ prefix, what string }{
		{"STREAM.INFO.", "look up stream %s"},
		{"STREAM.CREATE.", "create stream %s when missing"},
		{"STREAM.UPDATE.", "update stream %s"},
		{"STREAM.MSG.GET.", "read a message of %s by sequence"},
		{"DIRECT.GET.", "read keys (direct get on %s)"},
		{"CONSUMER.INFO.", "look up durable %s"},
		{"CONSUMER.CREATE.", "create or update durable %s"},
		{"CONSUMER.MSG.NEXT.", "pull messages of durable %s"},
		{"CONSUMER.PAUSE.", "pause durable %s when a person is needed"},
		{"CONSUMER.LIST.", "list the consumers on %s"},
	}
	if rest == "INFO" {
		return "account info (nats.go asks before creating a key-value bucket)"
	}
	for _, k := range kinds {
		arg, ok := strings.CutPrefix(rest, k.prefix)
		if !ok {
			continue
		}
		toks := strings.SplitN(arg, ".", 3)
		switch {
		case strings.HasPrefix(k.prefix, "CONSUMER.") && k.prefix != "CONSUMER.LIST." && len(toks) >= 2:
			what := fmt.Sprintf(k.what, toks[1]+" on "+toks[0])
			if len(toks) == 3 {
				what += " (its one filter subject in the name)"
			}
			return what
		default:
			return fmt.Sprintf(k.what, toks[0])
		}
	}
	return ""
}
