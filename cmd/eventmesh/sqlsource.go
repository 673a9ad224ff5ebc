package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/producer/sqlsource"
)

// sqlSourceConfig is what `eventmesh sql-source` reads: the table names
// and, for --apply, the database.
type sqlSourceConfig struct {
	SQL sqlsource.Config
}

func (c sqlSourceConfig) Validate() error { return c.SQL.Validate(0) }

const sqlSourceUsage = `eventmesh sql-source init [--dialect postgres|sqlite] [--apply [--example]]

  Prints the DDL of the SQL source: the event table (SQL_SOURCE_TABLE), its archive
  (SQL_SOURCE_ARCHIVE_TABLE) and, on PostgreSQL, the trigger that notifies the producers;
  then an example application table with the trigger that writes its events.
  --dialect defaults to that of SQL_SOURCE_DSN, else postgres.
  --apply runs the DDL on SQL_SOURCE_DSN instead (idempotent, one transaction);
  --example also creates the example table and its trigger there.`

const sqlSourceSummary = "Sets up the tables of the SQL event-table source."

// sqlSourceApplyTimeout bounds --apply: the DDL takes locks on the tables.
const sqlSourceApplyTimeout = 30 * time.Second

// runSQLSource runs `eventmesh sql-source ...`; args starts with
// "sql-source". Exit codes: 0 ok, 1 failure, 2 usage.
func runSQLSource(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || app.HelpRequested(args[1:2]) {
		if len(args) >= 2 {
			app.PrintHelp(stdout, sqlSourceUsage, sqlSourceSummary, &sqlSourceConfig{})
			return 0
		}
		fmt.Fprintf(stderr, "eventmesh sql-source: missing subcommand\n\nUsage: %s\n", sqlSourceUsage)
		return 2
	}
	a := &command{ctx: ctx, environ: environ, stdout: stdout, stderr: stderr, name: args[0] + " " + args[1]}
	if args[1] != "init" {
		fmt.Fprintf(stderr, "eventmesh: unknown command %q\n\nUsage: %s\n", a.name, sqlSourceUsage)
		return 2
	}
	return a.sqlSourceInit(args[2:])
}

func (a *command) sqlSourceInit(args []string) int {
	fs := a.flags("[--dialect postgres|sqlite] [--apply [--example]]")
	dialect := fs.String("dialect", "", "postgres or sqlite (default: that of SQL_SOURCE_DSN, else postgres)")
	apply := fs.Bool("apply", false, "run the DDL on SQL_SOURCE_DSN instead of printing it")
	example := fs.Bool("example", false, "with --apply: also create the example table example_orders and its trigger")
	if code, ok := a.parse(fs, args, 0); !ok {
		return code
	}
	cfg, err := app.Load[sqlSourceConfig](a.environ)
	if err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: configuration: %v\n", a.name, err)
		return 2
	}
	c := cfg.SQL
	if *example && !*apply {
		return a.usageErr("--example needs --apply (without --apply the example is printed anyway)")
	}
	dsnDialect := ""
	if c.Enabled() {
		dsnDialect, _ = sqlsource.DialectOf(c.DSN) // validated by Load
	}
	switch {
	case *apply && !c.Enabled():
		return a.usageErr("--apply needs SQL_SOURCE_DSN (postgres://… or a SQLite file path)")
	case *apply && *dialect != "" && *dialect != dsnDialect:
		return a.usageErr("--dialect %s does not match SQL_SOURCE_DSN, which is %s", *dialect, dsnDialect)
	case *dialect == "" && dsnDialect != "":
		*dialect = dsnDialect
	case *dialect == "":
		*dialect = sqlsource.Postgres
	}
	ddl, err := c.DDL(*dialect)
	if err != nil {
		return a.usageErr("--dialect: %v", err)
	}
	ex, _ := c.Example(*dialect)
	if !*apply {
		fmt.Fprintf(a.stdout, "%s\n%s", ddl, ex)
		return 0
	}
	actx, cancel := context.WithTimeout(a.ctx, sqlSourceApplyTimeout)
	defer cancel()
	if err := sqlsource.Apply(actx, c.DSN, ddl); err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: apply the DDL: %v\n", a.name, err)
		return 1
	}
	fmt.Fprintf(a.stdout, "%s: tables %s and %s are ready", *dialect, c.Table, c.ArchiveTable)
	if *dialect == sqlsource.Postgres {
		fmt.Fprintf(a.stdout, ", with the trigger %s_notify (LISTEN channel %q)", c.Table, c.Table)
	}
	fmt.Fprintln(a.stdout)
	if !*example {
		fmt.Fprintln(a.stdout, "Write event rows from your application's triggers: `eventmesh sql-source init` prints an example.")
		return 0
	}
	if err := sqlsource.Apply(actx, c.DSN, ex); err != nil {
		fmt.Fprintf(a.stderr, "eventmesh %s: apply the example: %v\n", a.name, err)
		return 1
	}
	fmt.Fprintln(a.stdout, "example table example_orders is ready: its inserts, updates and deletes become events on <prefix>."+strings.ToLower(c.Name)+".order.<verb>")
	return 0
}
