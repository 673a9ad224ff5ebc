package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/eventmesh/eventmesh/cmd/internal/bench"
)

// The figures themselves are tested in package bench; these are the
// command's flags.
func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{{"--sync", "sometimes"}, {"--runs", "0"}, {"--events", "5"}, {"--postgres", "mysql://x"}, {"extra"}, {"--only", "nope"}} {
		var out, errOut bytes.Buffer
		if code := runBench(context.Background(), args, nil, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := runBench(context.Background(), []string{"--help"}, nil, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "--cpuprofile") {
		t.Errorf("--help: exit %d\n%s", code, errOut.String())
	}
	// --json gives the JSON report (no figures run: an interrupted bench,
	// which exits 1); package bench checks that it has every row.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	if code := runBench(ctx, []string{"--json", "--no-rss", "--runs", "1"}, nil, &out, &errOut); code != 1 {
		t.Errorf("interrupted: exit %d, want 1", code)
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Figures) == 0 || rep.Machine["cores"] == nil {
		t.Errorf("--json: %v\n%s", err, out.String())
	}
}
