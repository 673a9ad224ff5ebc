package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// A smoke test of `eventmesh bench` at toy sizes: every figure runs once
// on 300 events (the RSS rows, which build the binaries, are skipped) and
// the table has every row, each with a value or the reason it is skipped.
// The PostgreSQL rows run when EVENTMESH_TEST_POSTGRES is set.
func TestBenchSmoke(t *testing.T) {
	args := []string{"--events", "300", "--runs", "1", "--no-rss"}
	pg := os.Getenv("EVENTMESH_TEST_POSTGRES")
	if pg != "" {
		args = append(args, "--postgres", pg)
	}
	var out, errOut bytes.Buffer
	start := time.Now()
	if code := runBench(context.Background(), args, os.Environ(), &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
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
	for _, s := range benchSpecs {
		median, ok := rows[s.name]
		switch {
		case !ok:
			t.Errorf("no row %q", s.name)
		case s.group == "rss":
			if !strings.Contains(median, "skipped") {
				t.Errorf("row %q: %q, want skipped (--no-rss)", s.name, median)
			}
		case (s.key == "archive_pg" || s.key == "archive_bare_pg") && pg == "":
			if !strings.Contains(median, "skipped") {
				t.Errorf("row %q: %q, want skipped (no --postgres)", s.name, median)
			}
		case !strings.HasSuffix(median, " "+s.unit) || strings.HasPrefix(median, "0 "):
			t.Errorf("row %q: median %q, want a positive number of %s", s.name, median, s.unit)
		}
	}
	if !strings.Contains(rows[benchSpecs[4].name], "req/s") {
		t.Errorf("ingest row: %q", rows[benchSpecs[4].name])
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{{"--sync", "sometimes"}, {"--runs", "0"}, {"--events", "5"}, {"--postgres", "mysql://x"}, {"extra"}} {
		var out, errOut bytes.Buffer
		if code := runBench(context.Background(), args, nil, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := runBench(context.Background(), []string{"--help"}, nil, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "--cpuprofile") {
		t.Errorf("--help: exit %d\n%s", code, errOut.String())
	}
	// The JSON report's shape (no figures run: an interrupted bench).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	runBench(ctx, []string{"--json", "--no-rss", "--runs", "1"}, nil, &out, &errOut)
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Figures) != len(benchSpecs) || rep.Machine["cores"] == nil {
		t.Errorf("--json: %v\n%s", err, out.String())
	}
}
