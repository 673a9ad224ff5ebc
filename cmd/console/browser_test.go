package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// screenshotsEnv names a directory: the browser tests save a screenshot of
// each page there (docs/img holds the overview's).
const screenshotsEnv = "EVENTMESH_SCREENSHOTS"

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// browser drives headless Chromium against one console.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // http://host:port
}

// newBrowser starts Debian's chromium headless with a fresh profile, or
// skips the test when it is not installed.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install -y chromium): the browser tests need it")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

// timed runs f with a context bounded to 30 s, failing the test with the
// page's text on an error.
func (b *browser) timed(what string, f func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		bctx, bcancel := context.WithTimeout(b.ctx, 5*time.Second)
		body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		bcancel()
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, body)
	}
}

// run runs steps in order.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.timed(what, func(ctx context.Context) error { return chromedp.Do(ctx, steps...) })
}

// open loads path and waits for its body.
func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("body")))
}

// text returns the text of the first element sel (CSS) matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.timed("text of "+sel, func(ctx context.Context) (err error) {
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			return err
		}
		s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		return err
	})
	return s
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	var v T
	b.timed("evaluate "+expr, func(ctx context.Context) (err error) {
		v, err = chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		return err
	})
	return v
}

// poll waits until a JavaScript expression is true.
func (b *browser) poll(what, expr string) {
	b.t.Helper()
	b.timed(what, func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(25*time.Second)))
		return err
	})
}

// has reports whether sel (CSS) matches an element of the page now.
func (b *browser) has(sel string) bool {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf("document.querySelectorAll(%q).length", sel)) > 0
}

// reloadUntil loads path again until sel matches an element whose text
// contains want (the console shows what the background and the archiver
// have done so far).
func (b *browser) reloadUntil(path, sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		b.open(path)
		if b.has(sel) && strings.Contains(eval[string](b, fmt.Sprintf("document.querySelector(%q).innerText", sel)), want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: no %s containing %q within 45s\npage:\n%s", path, sel, want, eval[string](b, "document.body.innerText"))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// click clicks sel and waits for next to be visible (the page an action
// leads to).
func (b *browser) click(sel, next string) {
	b.t.Helper()
	b.run("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitVisible(chromedp.CSS(next)))
}

// screenshot saves the page as console-<name>.png under
// $EVENTMESH_SCREENSHOTS.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	var png []byte
	b.timed("screenshot "+name, func(ctx context.Context) (err error) {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// post posts one Connector-shaped event to ingest.
func post(t testing.TB, ingest string, e harness.Event) {
	t.Helper()
	resp, err := http.Post("http://"+ingest+"/events", "application/json", bytes.NewReader(e.Body()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /events: %d", resp.StatusCode)
	}
}

// status runs `eventmesh status` against the mesh and returns its output.
func status(t *testing.T, natsAddr string) string {
	t.Helper()
	cmd := exec.Command(bins["eventmesh"], "status", "--interval", "0s")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NATS_URL=nats://" + natsAddr}
	out, _ := cmd.CombinedOutput() // exit 1 when a consumer needs attention
	return string(out)
}

// statusLine is the line of consumer in `eventmesh status`'s table.
func statusLine(out, consumer string) string {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, consumer+" ") {
			return line
		}
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The console of a real eventmesh (embedded NATS, SQLite archive, the
// webhook consumer to a receiver that refuses one event), driven by
// headless Chromium: the overview shows the consumers and counts; a search
// by id shows the event's outcomes; the refused event is under dead
// letters, and replayed by a click once the receiver is fixed it is
// delivered; a click pauses the consumer as `eventmesh status` reports,
// another resumes it; the Live page shows a new event; an action whose
// CSRF token is removed is refused. Then the console binary alone beyond
// loopback: refused without a password, with one a login.
func TestBrowser(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed (apt-get install -y chromium): the browser tests need it")
	}
	rc, err := harness.NewReceiver(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	run := fmt.Sprintf("B%d", time.Now().UnixNano()%1e9)
	var events []harness.Event
	for i := range 6 {
		events = append(events, harness.MessageReceived(run, i, 0))
	}
	poison := events[5].ID()
	rc.SetPoison(func(id string) bool { return id == poison })

	dataDir := t.TempDir()
	natsAddr, ingest, consoleAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	mesh := harness.NewProcess("eventmesh", bins["eventmesh"], ingest,
		"DATA_DIR="+dataDir, "NATS_LISTEN="+natsAddr, "INGEST_ADDR="+ingest, "ARCHIVE_ADDR=", "CONSOLE_ADDR="+consoleAddr,
		"CONSOLE_REFRESH=1s", "WEBHOOK_URL="+rc.URL, "WEBHOOK_SECRET="+webhookSecret, "WEBHOOK_DURABLE=webhook-erp",
		"WEBHOOK_START=all", "LOG_LEVEL=warn")
	if err := mesh.Start(); err != nil {
		t.Fatal(err)
	}
	defer mesh.Stop(30 * time.Second)
	for _, e := range events {
		post(t, ingest, e)
	}
	natstest.WaitFor(t, 30*time.Second, "five deliveries", func() bool {
		for _, e := range events[:5] {
			if !rc.Delivered(e.ID()) {
				return false
			}
		}
		return true
	})

	b := newBrowser(t, "http://"+consoleAddr)
	t.Run("overview", func(t *testing.T) {
		b.t = t
		b.reloadUntil("/", "#stream-events", "6 events")
		b.reloadUntil("/", "#consumers", "webhook-erp")
		if !strings.Contains(b.text("#consumers"), "archiver") {
			t.Errorf("the overview lacks the archiver:\n%s", b.text("#consumers"))
		}
		b.reloadUntil("/", ".legend", "webhook-erp delivered (5)")
		b.screenshot("overview")
	})
	t.Run("search by id", func(t *testing.T) {
		b.t = t
		id := events[2].ID()
		b.open("/events")
		b.run("search", chromedp.SendKeys(chromedp.CSS("#search-id"), id), chromedp.Click(chromedp.CSS("#search")),
			chromedp.WaitVisible(chromedp.CSS("#results")))
		if got := b.text("#results"); !strings.Contains(got, id) || !strings.Contains(got, "webhook-erp delivered") {
			t.Errorf("search results:\n%s", got)
		}
		b.screenshot("events")
		b.click(`a[href="/events/`+id+`"]`, "#timeline")
		if got := b.text("#timeline"); !strings.Contains(got, "webhook-erp attempt 1: delivered") {
			t.Errorf("timeline:\n%s", got)
		}
		if !strings.Contains(b.text("#data"), "Invoice 2") {
			t.Errorf("the event's data is not shown")
		}
		b.screenshot("event")
	})
	t.Run("dead letter replayed by click", func(t *testing.T) {
		b.t = t
		b.reloadUntil("/dlq", "#dead-letters", poison)
		b.screenshot("deadletters")
		rc.SetPoison(nil) // the receiver is fixed
		b.run("select", chromedp.Click(chromedp.CSS("#select-"+poison)))
		b.click("#replay-selected", ".flash")
		if got := b.text(".flash"); !strings.Contains(got, "replayed 1 dead letters") {
			t.Errorf("after replay: %s", got)
		}
		natstest.WaitFor(t, 30*time.Second, "the replayed event delivered", func() bool { return rc.Delivered(poison) })
		b.reloadUntil("/events/"+poison, "#timeline", "delivered")
		if got := b.text("#timeline"); !strings.Contains(got, "dead_lettered") {
			t.Errorf("the timeline lacks the dead letter:\n%s", got)
		}
		b.open("/dlq")
		if b.has("#dl-" + poison) {
			t.Error("the replayed dead letter is still listed")
		}
	})
	t.Run("pause and resume by click", func(t *testing.T) {
		b.t = t
		b.open("/")
		b.click("#pause-webhook-erp", "#resume-webhook-erp")
		if line := statusLine(status(t, natsAddr), "webhook-erp"); !strings.Contains(line, "paused") {
			t.Fatalf("eventmesh status after the pause: %q", line)
		}
		b.screenshot("paused")
		b.click("#resume-webhook-erp", "#pause-webhook-erp")
		if line := statusLine(status(t, natsAddr), "webhook-erp"); line == "" || strings.Contains(line, "paused") {
			t.Fatalf("eventmesh status after the resume: %q", line)
		}
	})
	t.Run("live", func(t *testing.T) {
		b.t = t
		b.open("/live?trigger=transport.*")
		b.poll("tail open", `document.getElementById("tail-status").textContent.startsWith("streaming")`)
		e := harness.MessageReceived(run, 100, 0)
		post(t, ingest, e)
		b.run("event in the tail", chromedp.WaitVisible(chromedp.CSS(`#tail tr[data-id="`+e.ID()+`"]`)))
		b.screenshot("live")
	})
	t.Run("action without CSRF token refused", func(t *testing.T) {
		b.t = t
		b.open("/")
		if !eval[bool](b, `(() => { const f = document.querySelector('form[action="/consumers/webhook-erp/pause"]');
			f.querySelector('input[name="csrf"]').remove(); return true; })()`) {
			t.Fatal("no pause form")
		}
		b.click("#pause-webhook-erp", "pre") // the refusal is plain text, which Chromium shows in a <pre>
		if got := b.text("pre"); !strings.Contains(got, "CSRF token") {
			t.Errorf("refusal: %q", got)
		}
		if line := statusLine(status(t, natsAddr), "webhook-erp"); strings.Contains(line, "paused") {
			t.Fatalf("paused without a CSRF token: %q", line)
		}
	})
	t.Run("beyond loopback", func(t *testing.T) {
		_, port, _ := strings.Cut(freeAddr(t), ":")
		env := []string{"NATS_URL=nats://" + natsAddr, "DATA_DIR=" + dataDir, "HTTP_ADDR=" + freeAddr(t), "CONSOLE_ADDR=0.0.0.0:" + port}
		cmd := exec.Command(bins["console"])
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "CONSOLE_PASSWORD") {
			t.Fatalf("console on 0.0.0.0 without a password: %v\n%s", err, out)
		}
		httpAddr := freeAddr(t)
		con := harness.NewProcess("console", bins["console"], httpAddr, "NATS_URL=nats://"+natsAddr, "DATA_DIR="+dataDir,
			"HTTP_ADDR="+httpAddr, "CONSOLE_ADDR=0.0.0.0:"+port, "CONSOLE_PASSWORD=open sesame", "LOG_LEVEL=warn")
		if err := con.Start(); err != nil {
			t.Fatal(err)
		}
		defer con.Stop(10 * time.Second)
		lb := newBrowser(t, "http://127.0.0.1:"+port)
		lb.open("/events")
		lb.run("login form", chromedp.WaitVisible(chromedp.CSS("#password")))
		lb.screenshot("login")
		lb.run("wrong password", chromedp.SendKeys(chromedp.CSS("#password"), "guess"), chromedp.Click(chromedp.CSS("#login")),
			chromedp.WaitVisible(chromedp.CSS("#login-error")))
		lb.run("right password", chromedp.SendKeys(chromedp.CSS("#password"), "open sesame"), chromedp.Click(chromedp.CSS("#login")),
			chromedp.WaitVisible(chromedp.CSS("#search-id")))
		lb.open("/")
		if got := lb.text("#consumers"); !strings.Contains(got, "webhook-erp") {
			t.Errorf("overview after login:\n%s", got)
		}
		if strings.Contains(con.Output(), "open sesame") {
			t.Error("the password was logged")
		}
	})
}
