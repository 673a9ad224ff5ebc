package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The results: the JSON report and the table.

// Figure is a row's results (the JSON output's figures).
type Figure struct {
	Key     string    `json:"key"`
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	Values  []float64 `json:"values"` // one per run that measured it
	Median  float64   `json:"median"`
	Ceiling string    `json:"ceiling,omitempty"`
	Ratio   float64   `json:"ratio,omitempty"`
	Target  string    `json:"target,omitempty"`
	Met     *bool     `json:"met,omitempty"`
	Note    string    `json:"note,omitempty"` // why it was skipped, or what failed
	spec    spec
}

// Stall is a span in which a durable had work but no pull request.
type Stall struct {
	Run     int     `json:"run"`
	Group   string  `json:"group"`
	Durable string  `json:"durable"`
	Seconds float64 `json:"seconds"`
	Floor   uint64  `json:"ack_floor"`
}

// Report is the --json output.
type Report struct {
	Command  string            `json:"command"`
	Machine  map[string]any    `json:"machine"`
	Versions map[string]string `json:"versions"`
	Sync     string            `json:"sync"`
	Runs     int               `json:"runs"`
	Events   int               `json:"events"`
	Figures  []*Figure         `json:"figures"`
	Stalls   []Stall           `json:"stalls"`
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// format formats v in unit as the table shows it.
func format(v float64, unit string) string {
	switch unit {
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "MB":
		return fmt.Sprintf("%.1f MB", v)
	}
	return thousands(v) + " " + unit
}

// thousands formats v rounded, with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// loadAvg returns the load averages of /proc/loadavg, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the CPU model of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// versions returns the versions of Go, NATS and eventmesh in this build.
func versions() map[string]string {
	v := map[string]string{"go": runtime.Version(), "nats-server": "v" + natsserver.VERSION, "nats.go": nats.Version, "eventmesh": app.Version}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.GoVersion != "" {
			v["go"] = bi.GoVersion
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			switch d.Path {
			case "github.com/nats-io/nats-server/v2":
				v["nats-server"] = d.Version
			case "github.com/nats-io/nats.go":
				v["nats.go"] = d.Version
			}
		}
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "+modified"
			}
			v["eventmesh"] += " (" + rev + ")"
		}
	}
	return v
}

// report assembles the results; load is the load average at the start.
func (b *bencher) report(load string) Report {
	rep := Report{
		Command:  fmt.Sprintf("eventmesh bench --sync %s --runs %d --events %d", b.opt.Sync, b.opt.Runs, b.opt.Events),
		Machine:  map[string]any{"cores": runtime.NumCPU(), "cpu": cpuModel(), "os": runtime.GOOS, "arch": runtime.GOARCH, "loadavg_at_start": load},
		Versions: versions(),
		Sync:     b.opt.Sync, Runs: b.opt.Runs, Events: b.opt.Events,
	}
	if b.opt.Postgres != "" {
		rep.Command += " --postgres DSN"
	}
	for _, s := range specs {
		rep.Figures = append(rep.Figures, b.figs[s.key])
	}
	rep.Stalls = b.stalls
	return rep
}

// writeTable prints the results as a Markdown table with a header.
func (b *bencher) writeTable(w io.Writer, rep Report) {
	v := rep.Versions
	fsync := "every write is fsynced before JetStream acknowledges it"
	if !b.always {
		fsync = "the store is fsynced every " + b.opt.Sync + " (an acknowledged event may be lost on power loss)"
	}
	fmt.Fprintf(w, "%s\n\n", rep.Command)
	fmt.Fprintf(w, "machine   %d cores (runtime.NumCPU), %s, %s/%s", rep.Machine["cores"], rep.Machine["cpu"], runtime.GOOS, runtime.GOARCH)
	if load := rep.Machine["loadavg_at_start"]; load != "" {
		fmt.Fprintf(w, ", load average %s at start", load)
	}
	fmt.Fprintf(w, "\nversions  %s, nats-server %s (embedded, in-process client), nats.go %s, eventmesh %s\n", v["go"], v["nats-server"], v["nats.go"], v["eventmesh"])
	fmt.Fprintf(w, "fsync     NATS_SYNC=%s: %s\n", b.opt.Sync, fsync)
	fmt.Fprintf(w, "figures   median of %d run(s), %s events of about 1 KB each; every ceiling measured in the same runs; ratio = median / ceiling's median\n\n",
		b.opt.Runs, thousands(float64(b.opt.Events)))
	fmt.Fprintln(w, "| figure | median | runs (min–max) | ceiling | ratio | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range rep.Figures {
		med, spread, ceiling, ratio := "—", "", "", ""
		if len(f.Values) > 0 {
			med = format(f.Median, f.Unit)
			if len(f.Values) > 1 {
				spread = strings.TrimSuffix(format(slices.Min(f.Values), f.Unit), " "+f.Unit) + "–" + format(slices.Max(f.Values), f.Unit)
			}
		}
		if f.Note != "" {
			med = strings.Join(strings.Fields(f.Note), " ")
			if len(med) > 240 {
				med = med[:240] + "…"
			}
			if len(f.Values) > 0 {
				med = format(f.Median, f.Unit) + " (" + med + ")"
			}
		}
		if f.Ceiling != "" {
			c := b.figs[f.Ceiling]
			ceiling = shortName(f.Ceiling)
			if len(c.Values) > 0 {
				ceiling += " " + format(c.Median, c.Unit)
			}
			if f.Ratio > 0 {
				ratio = fmt.Sprintf("**%.2f**", f.Ratio)
			}
		}
		target := f.Target
		if f.Met != nil {
			if *f.Met {
				target += ": met"
			} else {
				target += ": **missed**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", f.Name, med, spread, ceiling, ratio, target)
	}
	if len(rep.Stalls) > 0 {
		fmt.Fprintf(w, "\nStalls: a durable had events pending on the server, none in flight and no pull request waiting, so nothing moved until the client's missed-heartbeat check re-issued its pull:\n")
		for _, st := range rep.Stalls {
			fmt.Fprintf(w, "- run %d, %s: %s, %.1f s (ack floor at stream sequence %d)\n", st.Run, st.Group, st.Durable, st.Seconds, st.Floor)
		}
	}
}

// shortName names a ceiling in the table.
func shortName(key string) string {
	switch key {
	case "raw_publish":
		return "raw async publish"
	case "raw_publish_64":
		return "raw publish, 64 in flight"
	case "bare_http":
		return "bare handler"
	case "bare_relay":
		return "two-hop relay"
	case "fanout_raw":
		return "3 raw durables"
	case "archive_bare_sqlite", "archive_bare_pg":
		return "bare inserts"
	}
	return key
}
