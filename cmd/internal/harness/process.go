package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one run of a binary of the mesh, restartable with the same
// environment. Its stdout and stderr go to one buffer that outlives
// restarts (each start marked with a line "--- start N ---").
type Process struct {
	// Name labels the process in errors and its output.
	Name string
	// Path is the executable.
	Path string
	// Env is the environment, "NAME=value" entries; PATH is added.
	Env []string
	// ReadyAddr is the host:port serving GET /readyz (INGEST_ADDR of the
	// producer, HTTP_ADDR of a consumer binary); Start waits until it
	// answers 200. Empty: Start does not wait.
	ReadyAddr string
	// ReadyTimeout bounds that wait; zero means defaultWait.
	ReadyTimeout time.Duration

	out *Output

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current run has exited
	waitErr error
	starts  int
	kills   int
}

// NewProcess returns a process of the executable path with env (not yet
// started) whose readiness is GET http://readyAddr/readyz.
func NewProcess(name, path, readyAddr string, env ...string) *Process {
	return &Process{Name: name, Path: path, ReadyAddr: readyAddr, Env: env, out: NewOutput(4 << 20)}
}

// Start starts the process and waits until it is ready (see ReadyAddr).
// A process that exits before it is ready is an error quoting its output.
func (p *Process) Start() error {
	p.mu.Lock()
	if p.cmd != nil && !p.exitedLocked() {
		p.mu.Unlock()
		return fmt.Errorf("%s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	p.starts++
	fmt.Fprintf(p.out, "--- start %d ---\n", p.starts)
	cmd := exec.Command(p.Path)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, p.Env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s: start: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.waitErr = cmd, exited, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.waitErr = err
		}
		p.mu.Unlock()
		close(exited)
	}()
	if p.ReadyAddr == "" {
		return nil
	}
	return p.WaitReady(p.ReadyTimeout)
}

func (p *Process) exitedLocked() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// defaultWait bounds WaitReady and Stop when they are given no timeout.
const defaultWait = 90 * time.Second

// WaitReady polls GET /readyz until it answers 200, the process exits, or
// timeout (zero: defaultWait) passes.
func (p *Process) WaitReady(timeout time.Duration) error {
	if timeout <= 0 {
		// Generous: under a full parallel test run a 3-node cluster in the
		// test process can be slow to answer; readiness is not what the
		// chaos scenarios measure.
		timeout = defaultWait
	}
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return fmt.Errorf("%s: not started", p.Name)
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready: %v\n%s", p.Name, p.ExitErr(), p.out.Tail(4096))
		default:
		}
		resp, err := client.Get("http://" + p.ReadyAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (GET /readyz on %s)\n%s", p.Name, timeout, p.ReadyAddr, p.out.Tail(4096))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL (no drain, no final acks: work in flight is left to
// the server's redelivery) and waits until the process has exited. Killing
// a process that is not running does nothing.
func (p *Process) Kill() error {
	p.mu.Lock()
	if p.cmd == nil || p.exitedLocked() {
		p.mu.Unlock()
		return nil
	}
	cmd, exited := p.cmd, p.exited
	p.kills++
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGKILL: %w", p.Name, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: still running 10s after SIGKILL", p.Name)
	}
}

// Stop sends SIGTERM and waits up to timeout (zero: defaultWait) for the process
// to exit; an exit status other than 0 is an error. After the timeout it
// kills the process and says so.
func (p *Process) Stop(timeout time.Duration) error {
	if timeout <= 0 {
		// Generous, as WaitReady's: a drain under a full parallel test run
		// can be slow.
		timeout = defaultWait
	}
	p.mu.Lock()
	if p.cmd == nil || p.exitedLocked() {
		p.mu.Unlock()
		return nil
	}
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGTERM: %w", p.Name, err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed\n%s", p.Name, timeout, p.out.Tail(4096))
	}
	if err := p.ExitErr(); err != nil {
		return fmt.Errorf("%s on SIGTERM: %w\n%s", p.Name, err, p.out.Tail(4096))
	}
	return nil
}

// Restart stops the process if it runs (SIGTERM), then starts it again
// with the same environment and waits until it is ready.
func (p *Process) Restart() error {
	if err := p.Stop(0); err != nil {
		return err
	}
	return p.Start()
}

// ExitErr is the error of the last run's exit (nil for status 0 or while
// running).
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Starts is how many times the process was started; Kills how many times
// it was killed.
func (p *Process) Starts() int { p.mu.Lock(); defer p.mu.Unlock(); return p.starts }

// Kills is how many times Kill sent SIGKILL.
func (p *Process) Kills() int { p.mu.Lock(); defer p.mu.Unlock(); return p.kills }

// PeakRSS returns the peak resident set size of the running process in
// bytes: VmHWM of /proc/<pid>/status, so Linux only.
func (p *Process) PeakRSS() (int64, error) { return p.status("VmHWM") }

// RSS returns the resident set size of the running process now in bytes:
// VmRSS of /proc/<pid>/status, so Linux only.
func (p *Process) RSS() (int64, error) { return p.status("VmRSS") }

// CPUTime returns the CPU time (user and system) the running process has
// used: utime and stime of /proc/<pid>/stat, so Linux only (at its usual
// 100 clock ticks a second).
func (p *Process) CPUTime() (time.Duration, error) {
	pid, err := p.pid()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("CPU time of %s: %w (it needs Linux's /proc)", p.Name, err)
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("CPU time of %s: short /proc/%d/stat", p.Name, pid)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time of %s: %q", p.Name, f)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// pid is the running process's id.
func (p *Process) pid() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return 0, fmt.Errorf("%s is not running: %v\n%s", p.Name, p.waitErr, p.out.Tail(2000))
	}
	return p.cmd.Process.Pid, nil
}

// status reads a size field (in kB) of /proc/<pid>/status of the running
// process, in bytes.
func (p *Process) status(field string) (int64, error) {
	pid, err := p.pid()
	if err != nil {
		return 0, err
	}
	status := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, fmt.Errorf("%s of %s: %w (it needs Linux's /proc)", field, p.Name, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s of %s: %q", field, p.Name, strings.TrimSpace(rest))
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, status)
}

// Output returns what the process wrote (over all runs; the oldest part is
// dropped beyond 4 MiB).
func (p *Process) Output() string { return p.out.String() }

// Tail returns about the last n bytes of the output, from a line start.
func (p *Process) Tail(n int) string { return p.out.Tail(n) }

// Count returns how many times s occurs in the kept output (a log
// message, say).
func (p *Process) Count(s string) int { return strings.Count(p.out.String(), s) }

// Close kills the process if it still runs. For cleanup.
func (p *Process) Close() { p.Kill() }

// Output is a goroutine-safe buffer that keeps at most its limit of the
// latest bytes written.
type Output struct {
	mu    sync.Mutex
	b     []byte
	limit int
	cut   bool
}

// NewOutput returns a buffer keeping the last limit bytes.
func NewOutput(limit int) *Output { return &Output{limit: limit} }

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b = append(o.b, p...)
	if len(o.b) > o.limit {
		drop := len(o.b) - o.limit/2
		if i := bytes.IndexByte(o.b[drop:], '\n'); i >= 0 {
			drop += i + 1
		}
		o.b = append(o.b[:0], o.b[drop:]...)
		o.cut = true
	}
	return len(p), nil
}

// String returns the kept output.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cut {
		return "[… earlier output dropped …]\n" + string(o.b)
	}
	return string(o.b)
}

// Tail returns about the last n bytes, from a line start.
func (o *Output) Tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.b) <= n {
		return string(o.b)
	}
	b := o.b[len(o.b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return "[…]\n" + string(b)
}

// FreeAddr returns a loopback host:port that was free a moment ago, for
// INGEST_ADDR, HTTP_ADDR and friends.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
