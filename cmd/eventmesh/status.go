package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

const statusUsage = `eventmesh status [--json] [--interval 2s]

  Shows the ENMESHED stream and every durable consumer on it: pending and
  unacknowledged events, redeliveries, dead letters, pauses, last activity
  and the age of the oldest event still waiting for the consumer.

  The stream ENMESHED and the dead-letter queue ENMESHED_DLQ need attention
  when they are
    filling   used at or above the warn ratio (STREAM_WARN_RATIO, default 0.8)
    full      refusing events of the size they hold: ingest answers 503, a
              consumer holds the events whose dead letters the DLQ refuses

  A consumer needs attention when it is
    at_risk       its oldest pending event is older than half the stream's max
                  age: if it stays behind, events expire before it handles them
    paused        paused on the server (eventmesh consumer resume NAME lifts it)
    breaker_open  a process of it has its circuit breaker open (as each process
                  publishes to the bucket ENMESHED_CONSUMERS): its handler failed
                  again and again, and it fetches only a probe now and then
    dlq_full      ENMESHED_DLQ is full and the consumer holds unacknowledged
                  events (its dead letters among them) that kept its ack floor
                  still
    stalled       it has work but acknowledged nothing between two looks
                  --interval apart and was last active more than 3 × its ack
                  wait ago
    starved       not paused, its oldest never-delivered event is older than 1m
                  (or 2 × its ack wait, the longer) and no new event was
                  delivered between the two looks: retries of failing events
                  hold it
  The note of each says what to do.

Flags:
  --json            one JSON document instead of the table
  --interval 2s     gap between the two looks at the consumers; the second look
                    is skipped when no consumer with work can be stalled or
                    starved

Exit status: 0 all is healthy, 1 the stream or the DLQ is filling or full, or
some consumer needs attention (any state but ok), 2 the state cannot be told
(no server, no stream, usage error).`

// runStatus runs `eventmesh status`; args follow "status". Exit codes: 0
// healthy, 1 a consumer needs attention, 2 cannot tell.
func runStatus(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	return runStatusWith(ctx, admin.StatusOptions{}, args, environ, stdout, stderr)
}

// runStatusWith is runStatus with the report's options besides --interval
// (tests shorten the starve threshold).
func runStatusWith(ctx context.Context, defaults admin.StatusOptions, args, environ []string, stdout, stderr io.Writer) int {
	if app.HelpRequested(args) {
		app.PrintHelp(stdout, statusUsage, adminSummary, &adminConfig{})
		return 0
	}
	a := &command{ctx: ctx, environ: environ, stdout: stdout, stderr: stderr, name: "status"}
	fs := a.flags("[--json] [--interval 2s]")
	asJSON := fs.Bool("json", false, "write one JSON document instead of the table")
	interval := app.Duration(fs, "interval", 2*time.Second, "gap between the two looks at each consumer that tell a stalled one from a busy one")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	if *interval < 0 {
		return a.usageErr("--interval %s: want a duration of 0 or more", *interval)
	}
	healthy := false
	code := a.run(needEvents, func(ctx context.Context, js jetstream.JetStream, s router.Subjects) error {
		opt := defaults
		opt.Interval = *interval
		rep, err := admin.Status(ctx, js, s, opt)
		if err != nil {
			return err
		}
		healthy = rep.Healthy
		if *asJSON {
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		return writeStatus(a.stdout, rep)
	})
	switch {
	case code != 0:
		// No server, no stream, a failed request: nothing can be told.
		return 2
	case !healthy:
		return 1
	}
	return 0
}

// writeStatus writes the report as the stream summary, a table of the
// consumers and a verdict.
func writeStatus(w io.Writer, rep *admin.StatusReport) error {
	ss := rep.Stream
	size := admin.HumanBytes(int64(ss.Bytes))
	if ss.MaxBytes > 0 {
		size += fmt.Sprintf(" of %s (%.1f%%)", admin.HumanBytes(ss.MaxBytes), 100*ss.UsedFraction)
	}
	maxAge := "none"
	if ss.MaxAge > 0 {
		maxAge = admin.ShortDuration(time.Duration(ss.MaxAge * float64(time.Second)))
	}
	fmt.Fprintf(w, "stream %s: %d events, %s, max age %s", ss.Name, ss.Messages, size, maxAge)
	if ss.FirstTime != nil {
		fmt.Fprintf(w, ", first %s, last %s", ss.FirstTime.Format(time.RFC3339), ss.LastTime.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	attention := writeStreamFill(w, ss)
	if len(rep.Consumers) == 0 {
		fmt.Fprintf(w, "no durable consumers on %s\n", ss.Name)
	} else {
		fmt.Fprintln(w)
		var err error
		if attention, err = writeConsumers(w, rep.Consumers, attention); err != nil {
			return err
		}
	}
	if rep.DLQ != nil {
		fmt.Fprintln(w)
		attention = writeDLQ(w, *rep.DLQ, attention)
	}
	fmt.Fprintln(w)
	if len(attention) == 0 {
		_, err := fmt.Fprintf(w, "healthy: %d of %d consumers ok\n", len(rep.Consumers), len(rep.Consumers))
		return err
	}
	_, err := fmt.Fprintf(w, "needs attention: %s\n", strings.Join(attention, ", "))
	return err
}

// writeConsumers writes the table of the consumers; it returns attention
// with those that need it added.
func writeConsumers(w io.Writer, cs []admin.ConsumerStatus, attention []string) ([]string, error) {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tSTATE\tPENDING\tACK-PENDING\tREDELIVERED\tDEAD\tOLDEST-PENDING\tLAST-ACTIVE\tNOTE")
	for _, c := range cs {
		oldest, active := "-", "never"
		if c.OldestAge >= 0 {
			oldest = admin.ShortDuration(c.OldestAge)
		}
		if c.ActiveAgo >= 0 {
			active = admin.ShortDuration(c.ActiveAgo) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", c.Name, c.State, c.Pending, c.AckPending, c.Redelivered,
			c.DeadLettered, oldest, active, c.Note)
		if c.State != admin.StateOK {
			attention = append(attention, c.Name+" ("+strings.Join(c.Problems, ", ")+")")
		}
	}
	if err := tw.Flush(); err != nil {
		return attention, err
	}
	// The padding of an empty last column would trail each line.
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	return attention, nil
}

// writeStreamFill writes what to do about a stream that is filling or
// full, right under its line; it returns it as a "needs attention" entry.
func writeStreamFill(w io.Writer, ss admin.StreamStatus) []string {
	if ss.State == streams.FillOK {
		return nil
	}
	fmt.Fprintf(w, "  %s is %s (%.1f%% used, warn ratio %g): ", ss.Name, ss.State, 100*ss.UsedFraction, ss.WarnRatio)
	if ss.State == streams.FillFull {
		fmt.Fprint(w, "ingest refuses new events (503); ")
	}
	fmt.Fprintln(w, "raise STREAM_MAX_BYTES, or shorten STREAM_MAX_AGE once no consumer's oldest pending event is older")
	return []string{ss.Name + " (" + ss.State + ")"}
}

// writeDLQ writes the line of the DLQ, and what to do when it is filling
// or full; it returns attention with the DLQ added when it needs it.
func writeDLQ(w io.Writer, d admin.DLQStatus, attention []string) []string {
	size := admin.HumanBytes(int64(d.Bytes))
	if d.MaxBytes > 0 {
		size += fmt.Sprintf(" of %s (%.1f%%)", admin.HumanBytes(d.MaxBytes), 100*d.UsedFraction)
	}
	fmt.Fprintf(w, "dead letters %s: %s, %d entries, %s\n", d.Name, d.State, d.Messages, size)
	if d.State == streams.FillOK {
		return attention
	}
	fmt.Fprint(w, "  ")
	if d.State == streams.FillFull {
		fmt.Fprint(w, "it refuses new dead letters: consumers hold those events unacknowledged until there is room; ")
	}
	fmt.Fprintln(w, "make room: eventmesh dlq ls, then eventmesh dlq replay or eventmesh dlq purge")
	return append(attention, d.Name+" ("+d.State+")")
}
