package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// archiveConfig is what `eventmesh archive` reads: the store (it opens
// it directly) and, for replay, the NATS settings of the admin commands.
type archiveConfig struct {
	DSN     string `env:"ARCHIVE_DSN" secret:"true" desc:"archive store: postgres://… or a SQLite file path; default DATA_DIR/archive.db"`
	DataDir string `env:"DATA_DIR" envDefault:"./data" desc:"directory of the SQLite archive (archive.db)"`
}

const archiveUsage = `eventmesh archive query|replay|erase ...

  eventmesh archive query [--type T] [--source S] [--since T] [--until T] [--id ID]
                          [--outcome R] [--peer ADDR] [--limit N] [--all] [--json]
      --type is a NATS wildcard on the namespace (transport.*, transport.>); --outcome is
      delivered, retried, dead_lettered, paused or unsubscribed. Table, or JSON lines with --json.
  eventmesh archive replay --since T [--until T] [--type T] [--to-consumer C] [--dry-run]
      publishes archived events again with their ce-id and a fresh Nats-Msg-Id; with
      --to-consumer only that consumer gets them (<prefix>-replay.<C>.<namespace>).
  eventmesh archive erase --peer ADDRESS --yes
      removes every archived event whose data contains ADDRESS, and their outcomes.

Times are RFC 3339 or a duration ago (24h, 7d). Every archive command opens the store directly
(ARCHIVE_DSN, else DATA_DIR/archive.db) and never creates one: without it they exit 2. replay
also connects to NATS like the other admin commands.`

func runArchive(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || app.HelpRequested(args[1:2]) {
		if len(args) >= 2 {
			app.PrintHelp(stdout, archiveUsage, adminSummary, &archiveConfig{}, &adminConfig{})
			return 0
		}
		fmt.Fprintf(stderr, "eventmesh archive: missing subcommand\n\nUsage: %s\n", archiveUsage)
		return 2
	}
	a := &command{ctx: ctx, environ: environ, stdout: stdout, stderr: stderr, name: args[0] + " " + args[1]}
	switch args[1] {
	case "query":
		return a.archiveQuery(args[2:])
	case "replay":
		return a.archiveReplay(args[2:])
	case "erase":
		return a.archiveErase(args[2:])
	}
	fmt.Fprintf(stderr, "eventmesh: unknown command %q\n\nUsage: %s\n", a.name, archiveUsage)
	return 2
}

// withStore opens the archive store and calls f. It never creates one:
// every archive command reads the archive the mesh wrote (or erases from
// it), so finding none is a setup error (exit 2) naming ARCHIVE_DSN and
// DATA_DIR.
func (a *command) withStore(f func(st store.Store) error) int {
	cfg, err := app.Load[archiveConfig](a.environ)
	if err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: configuration: %v\n", a.name, err)
		return 2
	}
	st, err := store.OpenExisting(a.ctx, cfg.DSN, cfg.DataDir)
	if errors.Is(err, store.ErrNoStore) {
		hint := fmt.Sprintf("ARCHIVE_DSN is unset and DATA_DIR is %s: set DATA_DIR to the mesh's data directory (the one holding %s), or ARCHIVE_DSN to the mesh's archive",
			cfg.DataDir, store.DefaultFile)
		if cfg.DSN != "" {
			hint = fmt.Sprintf("ARCHIVE_DSN names no archive: set it to the mesh's archive (postgres://… or a SQLite file), or unset it to use DATA_DIR/%s (DATA_DIR is %s)",
				store.DefaultFile, cfg.DataDir)
		}
		fmt.Fprintf(a.stderr, "eventmesh %s: %v\n%s\n", a.name, err, hint)
		return 2
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: open the archive: %v\n", a.name, err)
		return 1
	}
	defer st.Close()
	if err := f(st); err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: %v\n", a.name, err)
		return 1
	}
	return 0
}

type filterFlags struct {
	typ, source, since, until, id, outcome, peer string
	limit                                        int
}

func (a *command) filterFlags(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) *filterFlags {
	f := &filterFlags{}
	fs.StringVar(&f.typ, "type", "", "namespace pattern (NATS wildcards)")
	fs.StringVar(&f.source, "source", "", "ce-source")
	fs.StringVar(&f.since, "since", "", "from this time (RFC 3339 or a duration ago)")
	fs.StringVar(&f.until, "until", "", "before this time")
	fs.StringVar(&f.id, "id", "", "ce-id")
	fs.StringVar(&f.outcome, "outcome", "", "delivered, retried, dead_lettered, paused or unsubscribed")
	fs.StringVar(&f.peer, "peer", "", "events whose data contains this address")
	fs.IntVar(&f.limit, "limit", 100, "page size (at most 1000)")
	return f
}

func (f *filterFlags) filter() (store.Filter, error) {
	q := map[string][]string{"type": {f.typ}, "source": {f.source}, "since": {f.since}, "until": {f.until},
		"id": {f.id}, "outcome": {f.outcome}, "peer": {f.peer}, "limit": {fmt.Sprint(f.limit)}, "outcomes": {"true"}}
	return archiver.FilterFromQuery(q, time.Now())
}

func (a *command) archiveQuery(args []string) int {
	fs := a.flags("[flags]")
	ff := a.filterFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON lines (fields: id, subject, type, source, time, stream_seq, origin, headers, data or data_base64, unsubscribed, archived_at, outcomes)")
	all := fs.Bool("all", false, "follow the cursor through every page")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	f, err := ff.filter()
	if err != nil {
		return a.usageErr("%v", err)
	}
	return a.withStore(func(st store.Store) error {
		var tw *tabwriter.Writer
		if !*asJSON {
			tw = tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tTYPE\tCE-ID\tSOURCE\tORIGIN\tOUTCOMES")
			defer tw.Flush()
		}
		enc := json.NewEncoder(a.stdout)
		for {
			page, err := st.Query(a.ctx, f)
			if err != nil {
				return err
			}
			for _, e := range page.Events {
				if *asJSON {
					enc.Encode(archiver.ToJSON(e))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.ID, e.Source, e.Origin, outcomeSummary(e))
			}
			if page.Next == "" || !*all {
				if page.Next != "" && !*asJSON {
					tw.Flush()
					fmt.Fprintf(a.stderr, "(more: --all, or the HTTP API's cursor %s)\n", page.Next)
				}
				return nil
			}
			f.Cursor = page.Next
		}
	})
}

func outcomeSummary(e store.Event) string {
	if e.Unsubscribed {
		return "unsubscribed"
	}
	var parts []string
	for _, o := range archiver.LastOutcomes(e) {
		parts = append(parts, fmt.Sprintf("%s:%s(%d)", o.Consumer, o.Result, o.Attempt))
	}
	return strings.Join(parts, " ")
}

func (a *command) archiveErase(args []string) int {
	fs := a.flags("--peer ADDRESS --yes")
	peer := fs.String("peer", "", "the peer's address (e.g. did:e:…)")
	yes := fs.Bool("yes", false, "really erase")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	if *peer == "" {
		return a.usageErr("--peer is required")
	}
	if !*yes {
		return a.usageErr("refusing to erase without --yes")
	}
	return a.withStore(func(st store.Store) error {
		ev, oc, err := st.ErasePeer(a.ctx, *peer)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "erased %d events and %d outcomes mentioning the peer\n", ev, oc)
		return nil
	})
}

func (a *command) archiveReplay(args []string) int {
	fs := a.flags("--since T [--until T] [--type T] [--to-consumer C] [--dry-run]")
	since := fs.String("since", "", "from this time (required)")
	until := fs.String("until", "", "before this time")
	typ := fs.String("type", "", "namespace pattern")
	to := fs.String("to-consumer", "", "durable that alone gets the replay")
	dry := fs.Bool("dry-run", false, "list what would be replayed")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	if *since == "" {
		return a.usageErr("--since is required")
	}
	if *to != "" {
		if err := router.ValidateToken(*to); err != nil {
			return a.usageErr("--to-consumer: %v", err)
		}
	}
	f, err := (&filterFlags{typ: *typ, since: *since, until: *until, limit: store.MaxLimit}).filter()
	if err != nil {
		return a.usageErr("%v", err)
	}
	var events []store.Event
	if code := a.withStore(func(st store.Store) error {
		events, err = archiver.Select(a.ctx, st, f)
		return err
	}); code != 0 {
		return code
	}
	if *dry {
		for _, e := range events {
			fmt.Fprintf(a.stdout, "%s %s %s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.ID)
		}
		fmt.Fprintf(a.stdout, "%d events would be replayed%s\n", len(events), toWhom(*to))
		return 0
	}
	return a.run(needEvents, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		if *to != "" {
			var nd *admin.NoDurableError
			if err := admin.RequireDurables(ctx, js, *to); errors.As(err, &nd) {
				return fmt.Errorf("consumer %s has no durable on %s at %s, so the replay would reach nobody: start it first, or check the name (eventmesh status lists the consumers)",
					*to, streams.Events, a.server)
			} else if err != nil {
				return err
			}
		}
		n, err := archiver.Replay(ctx, js, s, events, *to, time.Now)
		fmt.Fprintf(a.stdout, "replayed %d of %d events%s\n", n, len(events), toWhom(*to))
		return err
	})
}

func toWhom(consumer string) string {
	if consumer == "" {
		return " to every consumer"
	}
	return " to consumer " + consumer + " only"
}
