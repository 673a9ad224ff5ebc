package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// A smoke test of the bench at toy sizes: every figure runs once on 300
// events (the RSS rows, which build the binaries, are skipped) and the
// table has every row, each with a value or the reason it is skipped. The
// PostgreSQL rows run when EVENTMESH_TEST_POSTGRES is set.
func TestBenchSmoke(t *testing.T) {
	o := Options{Sync: "2m", Runs: 1, Events: 300, NoRSS: true, Postgres: os.Getenv("EVENTMESH_TEST_POSTGRES")}
	var out, errOut bytes.Buffer
	start := time.Now()
	if err := Run(context.Background(), o, &out, &errOut); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	t.Logf("took %s\n%s", time.Since(start).Round(time.Millisecond), out.String())

	table := out.String()
	for _, want := range []string{"cores (runtime.NumCPU)", "nats-server v", "go1.", "NATS_SYNC=2m", "| figure | median |"} {
		if !strings.Contains(table, want) {
			t.Errorf("the header lacks %q", want)
		}
	}
	rows := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if cells := strings.Split(line, " | "); strings.HasPrefix(line, "| ") && len(cells) == 6 {
			rows[strings.TrimPrefix(cells[0], "| ")] = cells[1]
		}
	}
	for _, s := range specs {
		median, ok := rows[s.name]
		switch {
		case !ok:
			t.Errorf("no row %q", s.name)
		case s.group == "rss":
			if !strings.Contains(median, "skipped") {
				t.Errorf("row %q: %q, want skipped (--no-rss)", s.name, median)
			}
		case (s.key == "archive_pg" || s.key == "archive_bare_pg") && o.Postgres == "":
			if !strings.Contains(median, "skipped") {
				t.Errorf("row %q: %q, want skipped (no --postgres)", s.name, median)
			}
		case !strings.HasSuffix(median, " "+s.unit) || strings.HasPrefix(median, "0 "):
			t.Errorf("row %q: median %q, want a positive number of %s", s.name, median, s.unit)
		}
	}
	if !strings.Contains(rows[specs[4].name], "req/s") {
		t.Errorf("ingest row: %q", rows[specs[4].name])
	}
}

// The JSON report's shape: every row, and the machine (no figures run: an
// interrupted bench).
func TestReportJSON(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	err := Run(ctx, Options{Sync: "2m", Runs: 1, Events: 20000, JSON: true, NoRSS: true}, &out, &errOut)
	if !errors.Is(err, ErrFailed) {
		t.Errorf("interrupted: %v, want ErrFailed", err)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Figures) != len(specs) || rep.Machine["cores"] == nil {
		t.Errorf("--json: %v\n%s", err, out.String())
	}
}
