package console

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
)

// chartData keeps the overview's chart: per minute, the events archived
// and each consumer's outcomes, from store.Activity. Past minutes do not
// change, except by outcomes the archiver writes late, so each update asks
// again only from a little before the previous one.
type chartData struct {
	window, step time.Duration

	mu      sync.Mutex
	tallies map[time.Time][]store.Tally // by bucket
	queried time.Time                   // until of the last update
}

// recheck is how far back each update asks again: outcomes reach the
// archive in batches, some a while after their minute.
const recheck = 5 * time.Minute

func newChartData(window, step time.Duration) *chartData {
	return &chartData{window: window, step: step, tallies: map[time.Time][]store.Tally{}}
}

// update asks the store for the buckets since the previous update (less
// recheck), or for the whole window the first time.
func (d *chartData) update(ctx context.Context, st store.Store, now time.Time) error {
	d.mu.Lock()
	start := now.Add(-d.window).Truncate(d.step)
	since := start
	if !d.queried.IsZero() && d.queried.Add(-recheck).After(since) {
		since = d.queried.Add(-recheck).Truncate(d.step)
	}
	d.mu.Unlock()
	ts, err := st.Activity(ctx, since, now, d.step)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for b := range d.tallies {
		if b.Before(start) || !b.Before(since) { // out of the window, or asked again
			delete(d.tallies, b)
		}
	}
	for _, t := range ts {
		d.tallies[t.Bucket] = append(d.tallies[t.Bucket], t)
	}
	d.queried = now
	return nil
}

// series is one line of the chart.
type series struct {
	Name   string
	Color  string
	Class  string // the legend's colour (console.css: no inline styles)
	Points string // SVG polyline points
	Total  int64
}

// chart is the drawn chart.
type chart struct {
	Width, Height int
	Max           int64
	Series        []series
	Ticks         []tick
	Empty         bool
	Window        string
}

// tick is a label on the time axis.
type tick struct {
	X     int
	Label string
}

// palette colours the consumers' lines; events in are drawn in black.
var palette = []string{"#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e", "#7f7f7f"}

// Geometry of the chart, in SVG user units.
const (
	chartWidth  = 960
	chartHeight = 220
	chartPad    = 30
)

// draw renders the window ending at now: events in, and delivered per
// consumer, per minute.
func (d *chartData) draw(now time.Time) chart {
	d.mu.Lock()
	defer d.mu.Unlock()
	start := now.Add(-d.window).Truncate(d.step)
	n := int(now.Sub(start)/d.step) + 1
	in := make([]int64, n)
	delivered := map[string][]int64{}
	for b, ts := range d.tallies {
		i := int(b.Sub(start) / d.step)
		if i < 0 || i >= n {
			continue
		}
		for _, t := range ts {
			switch {
			case t.Consumer == "":
				in[i] += t.Count
			case t.Result == store.ResultDelivered:
				if delivered[t.Consumer] == nil {
					delivered[t.Consumer] = make([]int64, n)
				}
				delivered[t.Consumer][i] += t.Count
			}
		}
	}
	c := chart{Width: chartWidth, Height: chartHeight, Window: admin.ShortDuration(d.window)}
	var peak int64
	for _, v := range in {
		peak = max(peak, v)
	}
	for _, vs := range delivered {
		for _, v := range vs {
			peak = max(peak, v)
		}
	}
	c.Max, c.Empty = peak, peak == 0
	if peak == 0 {
		peak = 1
	}
	x := func(i int) float64 { return chartPad + float64(i)*float64(chartWidth-2*chartPad)/float64(max(n-1, 1)) }
	y := func(v int64) float64 {
		return chartHeight - chartPad - float64(v)*float64(chartHeight-2*chartPad)/float64(peak)
	}
	line := func(name, color, class string, vs []int64) series {
		var b strings.Builder
		var total int64
		for i, v := range vs {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(v))
			total += v
		}
		return series{Name: name, Color: color, Class: class, Points: b.String(), Total: total}
	}
	c.Series = append(c.Series, line("events in", "#000000", "c0", in))
	names := make([]string, 0, len(delivered))
	for name := range delivered {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		c.Series = append(c.Series, line(name+" delivered", palette[i%len(palette)], fmt.Sprintf("c%d", i%len(palette)+1), delivered[name]))
	}
	every := max(time.Hour, d.window/6).Truncate(time.Hour)
	for t := start.Truncate(every).Add(every); t.Before(now); t = t.Add(every) {
		c.Ticks = append(c.Ticks, tick{X: int(x(int(t.Sub(start) / d.step))), Label: t.UTC().Format("15:04")})
	}
	return c
}
