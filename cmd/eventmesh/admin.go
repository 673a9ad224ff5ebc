package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// adminConfig is what the admin subcommands read: how to reach the server
// (they never start one) and the subject prefix.
type adminConfig struct {
	Log    app.LogConfig
	NATS   streams.ConnConfig
	Listen string `env:"NATS_LISTEN" envDefault:"127.0.0.1:4222" desc:"client address of the eventmesh server; admin commands connect to nats://NATS_LISTEN when NATS_URL is not set"`
	Prefix streams.PrefixConfig
}

func (c adminConfig) Validate() error { return errors.Join(c.Log.Validate(), c.Prefix.Validate()) }

// adminConnectTimeout bounds the wait for the server: an admin command
// fails rather than waits for a server that is not there.
const adminConnectTimeout = 5 * time.Second

const adminUsage = `eventmesh dlq|consumer ...

  eventmesh dlq ls [--consumer C] [--since T] [--json]   list dead letters (ENMESHED_DLQ)
  eventmesh dlq show SEQ                                  one dead letter: fields, headers, body
  eventmesh dlq replay [--consumer C] [--since T] [--seq N]
                                                          publish dead letters again, each to its
                                                          consumer only, and remove them from the DLQ
  eventmesh dlq purge [--consumer C] --yes                delete dead letters
  eventmesh consumer ls                                   durable consumers on ENMESHED
  eventmesh consumer pause NAME                           pause a consumer on the server (maintenance)
  eventmesh consumer resume NAME                          lift a pause

--since takes an RFC 3339 time (2025-03-01T12:00:00Z) or a duration ago (90m, 24h, 7d).
Without --consumer, --since or --seq, replay takes every dead letter.

Exit status: 0 ok, 1 a failure, 2 a usage or configuration error, or a server without
ENMESHED (for dlq: or ENMESHED_DLQ); the message then names the server.`

const adminSummary = "Admin commands never start a server: they connect to NATS_URL when it is set, else to nats://NATS_LISTEN."

// runAdmin runs `eventmesh dlq ...` and `eventmesh consumer ...`; args
// starts with "dlq" or "consumer". Exit codes: 0 ok, 1 failure, 2 usage,
// configuration or a missing stream.
func runAdmin(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || app.HelpRequested(args[1:2]) {
		if len(args) >= 2 {
			app.PrintHelp(stdout, adminUsage, adminSummary, &adminConfig{})
			return 0
		}
		fmt.Fprintf(stderr, "eventmesh %s: missing subcommand\n\nUsage: %s\n", strings.Join(args, " "), adminUsage)
		return 2
	}
	a := &command{ctx: ctx, environ: environ, stdout: stdout, stderr: stderr, name: args[0] + " " + args[1]}
	rest := args[2:]
	switch a.name {
	case "dlq ls", "dlq list":
		return a.dlqList(rest)
	case "dlq show":
		return a.dlqShow(rest)
	case "dlq replay":
		return a.dlqReplay(rest)
	case "dlq purge":
		return a.dlqPurge(rest)
	case "consumer ls", "consumer list":
		return a.consumerList(rest)
	case "consumer pause":
		return a.consumerPause(rest, true)
	case "consumer resume":
		return a.consumerPause(rest, false)
	}
	fmt.Fprintf(stderr, "eventmesh: unknown command %q\n\nUsage: %s\n", a.name, adminUsage)
	return 2
}

// command is one run of an admin subcommand.
type command struct {
	ctx            context.Context
	environ        []string
	stdout, stderr io.Writer
	name           string // "dlq ls", for messages
	server         string // the server run connected to and where its address came from, for messages
}

// flags returns the flag set of the subcommand; synopsis follows its name
// in the usage line.
func (a *command) flags(synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("eventmesh "+a.name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: eventmesh %s %s\n", a.name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs and checks the number of positional
// arguments; it returns an exit code when the command should stop.
func (a *command) parse(fs *flag.FlagSet, args []string, positional int) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() != positional {
		if fs.NArg() < positional {
			fmt.Fprintf(a.stderr, "eventmesh %s: missing argument\n", a.name)
		} else {
			fmt.Fprintf(a.stderr, "eventmesh %s: unexpected argument %q\n", a.name, fs.Arg(positional))
		}
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// usageErr reports a usage error and returns its exit code.
func (a *command) usageErr(format string, args ...any) int {
	fmt.Fprintf(a.stderr, "eventmesh %s: %s\n", a.name, fmt.Sprintf(format, args...))
	return 2
}

// The streams a command needs: when one is missing, the command talks to
// a server that is not the mesh's (or to the mesh before it ran).
var (
	needEvents = []string{streams.Events}
	needDLQ    = []string{streams.Events, streams.DLQ}
)

// whatCreates says what creates each stream the admin commands need.
var whatCreates = map[string]string{
	streams.Events: "eventmesh or the producer creates it when it starts",
	streams.DLQ:    "a consumer creates it when it first starts",
}

// run loads the configuration, connects, checks that the streams in need
// exist, and calls f; an error from f is a failure, reported on stderr.
// Whenever something is not found, the message names the server (a.server)
// and where its address came from. Exit codes: 2 for a configuration error
// or a missing stream, 1 for a failure.
func (a *command) run(need []string, f func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error) int {
	cfg, err := app.Load[adminConfig](a.environ)
	if err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: configuration: %v\n", a.name, err)
		return 2
	}
	s, _ := cfg.Prefix.Subjects() // validated by Load
	conn, err := cfg.NATS.Resolve()
	if err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: configuration: %v\n", a.name, err)
		return 2
	}
	source := "NATS_URL"
	switch {
	case cfg.NATS.URL != "":
	case conn.URL != "":
		source = "NATS_URL unset, using NATS_CONTEXT " + cfg.NATS.Context
	default:
		conn.URL = "nats://" + cfg.Listen
		source = "NATS_URL unset, using NATS_LISTEN"
	}
	log := cfg.Log.Logger(a.stderr)
	cctx, cancel := context.WithTimeout(a.ctx, adminConnectTimeout)
	nc, err := streams.Connect(cctx, conn, "eventmesh "+a.name, log)
	cancel()
	if err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: %v\n(is eventmesh running? admin commands connect to NATS_URL when it is set, else to nats://NATS_LISTEN)\n", a.name, err)
		return 1
	}
	defer nc.Close()
	a.server = nc.ConnectedUrlRedacted() + " (" + source + ")"
	js, err := streams.NewJetStream(nc, log)
	if err == nil {
		err = a.need(js, need)
	}
	if err == nil {
		err = f(a.ctx, js, s)
	}
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(missingStream)):
		fmt.Fprintf(a.stderr, "eventmesh %s: %v\n", a.name, err)
		return 2
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Deleted since the check.
		fmt.Fprintf(a.stderr, "eventmesh %s: %v; server %s\n", a.name, err, a.server)
		return 2
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrMsgNotFound):
		fmt.Fprintf(a.stderr, "eventmesh %s: %v; server %s\n", a.name, err, a.server)
		return 1
	}
	fmt.Fprintf(a.stderr, "eventmesh %s: %v\n", a.name, err)
	return 1
}

// need checks that each of names exists; a missing one is a missingStream.
func (a *command) need(js jetstream.JetStream, names []string) error {
	for _, name := range names {
		_, err := js.Stream(a.ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return missingStream(fmt.Sprintf("no stream %s on %s: is the mesh running there? (%s)", name, a.server, whatCreates[name]))
		}
		if err != nil {
			return fmt.Errorf("stream %s on %s: %w", name, a.server, err)
		}
	}
	return nil
}

// missingStream is a stream a command needs that the server lacks.
type missingStream string

func (e missingStream) Error() string { return string(e) }

// sinceFlag is --since: an RFC 3339 time or a duration ago.
type sinceFlag struct {
	t   time.Time
	now func() time.Time
}

func (f *sinceFlag) String() string {
	if f == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *sinceFlag) Set(v string) error {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		f.t = t
		return nil
	}
	d, err := streams.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want an RFC 3339 time (2025-03-01T12:00:00Z) or a duration ago (90m, 24h, 7d)")
	}
	f.t = f.now().Add(-d)
	return nil
}

// selection is the --consumer and --since of ls and replay.
type selection struct {
	consumer string
	since    sinceFlag
}

func (a *command) selectionFlags(fs *flag.FlagSet) *selection {
	sel := &selection{since: sinceFlag{now: time.Now}}
	fs.StringVar(&sel.consumer, "consumer", "", "only the dead letters of this consumer (durable name)")
	fs.Var(&sel.since, "since", "only dead letters stored since this RFC 3339 time or duration ago (24h, 7d)")
	return sel
}

func (sel *selection) validate() error {
	if sel.consumer == "" {
		return nil
	}
	return router.ValidateToken(sel.consumer)
}

func (sel *selection) String() string {
	var parts []string
	if sel.consumer != "" {
		parts = append(parts, "consumer "+sel.consumer)
	}
	if !sel.since.t.IsZero() {
		parts = append(parts, "since "+sel.since.t.Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (a *command) dlqList(args []string) int {
	fs := a.flags("[--consumer C] [--since T] [--json]")
	sel := a.selectionFlags(fs)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	if err := sel.validate(); err != nil {
		return a.usageErr("--consumer: %v", err)
	}
	return a.run(needDLQ, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		dls, err := admin.SelectDeadLetters(ctx, js, s, admin.Selection{Consumer: sel.consumer, Since: sel.since.t})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			for _, dl := range dls {
				if err := enc.Encode(dl); err != nil {
					return err
				}
			}
			return nil
		}
		if len(dls) == 0 {
			fmt.Fprintf(a.stdout, "no dead letters%s in %s on %s\n", sel, streams.DLQ, a.server)
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tCONSUMER\tTYPE\tCE-ID\tATTEMPTS\tDEAD-AT\tREASON")
		for _, dl := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", dl.Seq, dl.Consumer, dl.Event.Namespace, dl.Event.ID,
				dl.Attempts, adminTime(dl.DeadAt, time.RFC3339), adminShort(dl.Reason, 80))
		}
		return tw.Flush()
	})
}

func (a *command) dlqShow(args []string) int {
	fs := a.flags("SEQ")
	if code, ok := a.parse(fs, args, 1); !ok {
		return code
	}
	seq, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || seq == 0 {
		return a.usageErr("SEQ %q: want the sequence number `eventmesh dlq ls` shows", fs.Arg(0))
	}
	return a.run(needDLQ, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		dl, err := admin.GetDeadLetter(ctx, js, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("no dead letter with seq %d in %s on %s: replayed or purged? (`eventmesh dlq ls` lists what is there)", seq, streams.DLQ, a.server)
		}
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
		e := dl.Event
		for _, f := range [][2]string{
			{"seq", strconv.FormatUint(dl.Seq, 10)},
			{"consumer", dl.Consumer},
			{"reason", dl.Reason},
			{"attempts", strconv.Itoa(dl.Attempts)},
			{"subject", dl.Subject},
			{"stream seq", strconv.FormatUint(dl.StreamSeq, 10)},
			{"dead at", adminTime(dl.DeadAt, time.RFC3339Nano)},
			{"event id", e.ID},
			{"type", e.Namespace},
			{"source", e.Source},
			{"time", adminTime(e.Time, time.RFC3339Nano)},
			{"origin", string(e.Origin)},
			{"correlation id", e.CorrelationID},
			{"traceparent", e.Traceparent},
		} {
			if f[1] != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "\nheaders:")
		for _, k := range slices.Sorted(maps.Keys(dl.Header)) {
			for _, v := range dl.Header[k] {
				fmt.Fprintf(a.stdout, "  %s: %s\n", k, v)
			}
		}
		fmt.Fprintf(a.stdout, "\nbody (%d bytes):\n", len(e.Data))
		admin.WriteBody(a.stdout, e.Data)
		return nil
	})
}

func (a *command) dlqReplay(args []string) int {
	fs := a.flags("[--consumer C] [--since T] [--seq N]")
	sel := a.selectionFlags(fs)
	seq := fs.Uint64("seq", 0, "only the dead letter with this sequence number (from `eventmesh dlq ls`)")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	if err := sel.validate(); err != nil {
		return a.usageErr("--consumer: %v", err)
	}
	if *seq != 0 && !sel.since.t.IsZero() {
		return a.usageErr("--seq and --since cannot be combined")
	}
	return a.run(needDLQ, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		dls, err := admin.SelectDeadLetters(ctx, js, s, admin.Selection{Consumer: sel.consumer, Since: sel.since.t, Seq: *seq})
		if *seq != 0 && errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("no dead letter with seq %d in %s on %s: replayed or purged already?", *seq, streams.DLQ, a.server)
		}
		if err != nil {
			return err
		}
		if len(dls) == 0 {
			fmt.Fprintf(a.stdout, "nothing to replay: no dead letters%s in %s on %s\n", sel, streams.DLQ, a.server)
			return nil
		}
		// A replay reaches its consumer's durable only: with no durable it
		// would reach nobody, while its dead letter is deleted.
		names := make([]string, len(dls))
		for i, dl := range dls {
			names[i] = dl.Consumer
		}
		var nd *admin.NoDurableError
		if err := admin.RequireDurables(ctx, js, names...); errors.As(err, &nd) {
			return fmt.Errorf("consumer %s has no durable on %s at %s, so a replay would reach nobody: start the consumer first, or narrow the replay with --consumer (dead letter seq %d)",
				nd.Consumer, streams.Events, a.server, dls[nd.Index].Seq)
		} else if err != nil {
			return err
		}
		n, err := admin.ReplayDeadLetters(ctx, js, s, dls, time.Now)
		a.replayed(s, dls[:n], len(dls))
		return err
	})
}

// replayed prints how many dead letters were replayed and to which
// subjects.
func (a *command) replayed(s router.Subjects, done []consumers.DeadLetter, total int) {
	fmt.Fprintf(a.stdout, "replayed %d of %d dead letters\n", len(done), total)
	var subjects []string
	count := map[string]int{}
	for _, dl := range done {
		subj := s.Replay(dl.Consumer, dl.Event.Namespace)
		if count[subj] == 0 {
			subjects = append(subjects, subj)
		}
		count[subj]++
	}
	for _, subj := range subjects {
		fmt.Fprintf(a.stdout, "  %d → %s\n", count[subj], subj)
	}
}

func (a *command) dlqPurge(args []string) int {
	fs := a.flags("[--consumer C] --yes")
	consumer := fs.String("consumer", "", "only the dead letters of this consumer (durable name)")
	yes := fs.Bool("yes", false, "really delete them")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	whose := "of every consumer"
	if *consumer != "" {
		if err := router.ValidateToken(*consumer); err != nil {
			return a.usageErr("--consumer: %v", err)
		}
		whose = "of consumer " + *consumer
	}
	if !*yes {
		return a.usageErr("refusing to delete the dead letters %s without --yes (they cannot be replayed afterwards)", whose)
	}
	return a.run(needDLQ, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		n, err := admin.PurgeDeadLetters(ctx, js, s, *consumer)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "purged %d dead letters %s\n", n, whose)
		return nil
	})
}

func (a *command) consumerList(args []string) int {
	fs := a.flags("")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	return a.run(needEvents, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		ds, err := consumers.Durables(ctx, js)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			fmt.Fprintf(a.stdout, "no durable consumers on %s at %s\n", streams.Events, a.server)
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tPENDING\tACK-PENDING\tREDELIVERED")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", d.Name, adminState(d), d.NumPending, d.NumAckPending, d.NumRedelivered)
		}
		return tw.Flush()
	})
}

// adminState is "active", "paused (until resumed)" for a pause until
// further notice, or "paused until <time>".
func adminState(d *jetstream.ConsumerInfo) string {
	if !d.Paused {
		return "active"
	}
	if consumers.PausedUntilResumed(d.Config.PauseUntil, time.Now()) {
		return "paused (until resumed)"
	}
	return "paused until " + d.Config.PauseUntil.UTC().Format(time.RFC3339)
}

// consumerPause pauses (pause) or resumes the durable NAME on the server.
func (a *command) consumerPause(args []string, pause bool) int {
	fs := a.flags("NAME")
	if code, ok := a.parse(fs, args, 1); !ok {
		return code
	}
	name := fs.Arg(0)
	if err := router.ValidateToken(name); err != nil {
		return a.usageErr("NAME: %v", err)
	}
	return a.run(needEvents, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		if !pause {
			if err := consumers.ResumeConsumer(ctx, js, name); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "resumed %s: it fetches again, unacknowledged events are redelivered\n", name)
			return nil
		}
		if err := consumers.PauseConsumer(ctx, js, name, "maintenance: eventmesh consumer pause"); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "paused %s on the server until `eventmesh consumer resume %s`\n", name, name)
		return nil
	})
}

// adminTime formats t in UTC, "-" when zero.
func adminTime(t time.Time, layout string) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(layout)
}

// adminShort makes s one line of at most n runes for a table.
func adminShort(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
