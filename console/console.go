// Package console is the operator console: the mesh in a browser. Every
// page is rendered on the server (html/template, embedded) from the same
// functions the CLI calls — admin.Status, the dead-letter functions of
// consumers/admin, consumers.PauseConsumer and ResumeConsumer, the archive
// store's Query and Get, archiver.Replay — and only the Live page keeps a
// connection open (server-sent events).
//
// Security (security.go): on loopback no credentials are needed; beyond
// it CONSOLE_PASSWORD is required, with a login form (rate-limited) and a
// stateless signed session cookie. Every request's Host must be allowed
// (DNS rebinding), every action is a POST with a CSRF token and a checked
// Origin, and is logged. Nothing is cached by the browser, and no event
// payload is ever logged.
package console

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Deps are what the console works on.
type Deps struct {
	JS       jetstream.JetStream
	Subjects router.Subjects
	// Store is the archive, read in process; nil when the archive is off
	// (ARCHIVE_ENABLED=false): the event pages say so.
	Store store.Store
	Log   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Status are the options of the sampled admin.Status (Interval 0:
	// 2 s, as `eventmesh status`).
	Status admin.StatusOptions
}

// Console serves the console's pages. Start its background sampler with
// Run.
type Console struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	pages map[string]*template.Template
	sec   *security
	tails chan struct{} // a slot per Live tail

	mu      sync.Mutex
	sample  *sample       // the latest look at the consumers and the chart
	sampled chan struct{} // closed after the first sample
	chart   *chartData
}

// sample is one background look at the mesh.
type sample struct {
	at     time.Time
	report *admin.StatusReport
	err    error
}

// New builds the console; cfg must be valid (Config.Validate).
func New(cfg Config, deps Deps) (*Console, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Status.Interval == 0 {
		deps.Status.Interval = 2 * time.Second
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sec, err := newSecurity(cfg, deps.Now)
	if err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, deps: deps, log: deps.Log, pages: pages, sec: sec,
		tails:   make(chan struct{}, cfg.MaxTails),
		sampled: make(chan struct{}),
		chart:   newChartData(cfg.ChartWindow, time.Minute),
	}, nil
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// Handler returns the console's HTTP handler, its security checks
// around every route.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("POST /consumers/{name}/pause", c.pause)
	mux.HandleFunc("POST /consumers/{name}/resume", c.resume)
	mux.HandleFunc("GET /events", c.events)
	mux.HandleFunc("GET /events/{id}", c.event)
	mux.HandleFunc("POST /events/{id}/replay", c.replayEvent)
	mux.HandleFunc("GET /dlq", c.deadLetters)
	mux.HandleFunc("GET /dlq/{seq}", c.deadLetter)
	mux.HandleFunc("POST /dlq/replay", c.replayDeadLetters)
	mux.HandleFunc("GET /dlq/purge", c.purgeConfirm)
	mux.HandleFunc("POST /dlq/purge", c.purge)
	mux.HandleFunc("GET /live", c.live)
	mux.HandleFunc("GET /live/stream", c.liveStream)
	return c.sec.wrap(mux)
}

// page is what every template gets.
type page struct {
	Title    string
	Nav      string // the menu entry to highlight
	CSRF     string
	ReadOnly bool
	Login    bool // a password guards the console (show "log out")
	Flash    string
	Error    string
	Data     any
}

// render writes the page name with data; a template error is a 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, CSRF: c.sec.csrfToken(r), ReadOnly: c.cfg.ReadOnly, Login: c.cfg.Password != "",
		Flash: r.URL.Query().Get("msg"), Data: data}
	c.renderPage(w, status, name, p)
}

func (c *Console) renderPage(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail renders an error page: what went wrong, for the operator.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	p := page{Title: http.StatusText(status), CSRF: c.sec.csrfToken(r), ReadOnly: c.cfg.ReadOnly, Login: c.cfg.Password != "",
		Error: err.Error()}
	c.renderPage(w, status, "error", p)
}

// done redirects after an action (POST, then GET) with a message.
func done(w http.ResponseWriter, r *http.Request, to, msg string) {
	u := to
	if msg != "" {
		sep := "?"
		if bytes.ContainsRune([]byte(to), '?') {
			sep = "&"
		}
		u += sep + "msg=" + url.QueryEscape(msg)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// Run samples the consumers' states and the chart every CONSOLE_REFRESH
// until ctx ends (the overview shows the latest sample).
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Refresh)
	defer t.Stop()
	for {
		c.refresh(ctx, c.deps.Status.Interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh takes one sample: the status report (two looks interval apart)
// and the chart's recent buckets.
func (c *Console) refresh(ctx context.Context, interval time.Duration) {
	c.refreshStatus(ctx, interval)
	// The chart after the states: its first query (the whole window) may
	// take seconds on a large archive, and the overview shows the states
	// meanwhile.
	if c.deps.Store != nil {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := c.chart.update(cctx, c.deps.Store, c.deps.Now()); err != nil && ctx.Err() == nil {
			c.log.Warn("console: chart", "err", err)
		}
		cancel()
	}
}

// refreshStatus takes the status report (two looks interval apart) as the
// overview's sample.
func (c *Console) refreshStatus(ctx context.Context, interval time.Duration) {
	opt := c.deps.Status
	opt.Interval = interval
	rctx, cancel := context.WithTimeout(ctx, interval+10*time.Second)
	rep, err := admin.Status(rctx, c.deps.JS, c.deps.Subjects, opt)
	cancel()
	if err != nil && ctx.Err() == nil {
		c.log.Warn("console: status", "err", err)
	}
	c.mu.Lock()
	first := c.sample == nil
	c.sample = &sample{at: c.deps.Now(), report: rep, err: err}
	c.mu.Unlock()
	if first {
		close(c.sampled)
	}
}

// latest waits (up to ctx) for the first sample and returns the latest.
func (c *Console) latest(ctx context.Context) *sample {
	select {
	case <-c.sampled:
	case <-ctx.Done():
		return &sample{err: fmt.Errorf("no sample of the consumers yet: %w", ctx.Err())}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sample
}
