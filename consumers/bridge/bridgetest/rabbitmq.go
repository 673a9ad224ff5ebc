package bridgetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/streams/natstest"
)

// The installed RabbitMQ's scripts, started directly: the wrapper in
// /usr/sbin would switch to the rabbitmq user, who cannot read the test's
// directory.
const (
	rabbitmqServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	rabbitmqctl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// rabbitmqStartTimeout is how long a private node may take to boot (about
// 25 s on a loaded machine).
const rabbitmqStartTimeout = 60 * time.Second

// RabbitMQ is a RabbitMQ node of a test's own, for what cannot be done to
// the machine's shared broker (raising a resource alarm).
type RabbitMQ struct {
	URL  *url.URL // amqp://guest:guest@127.0.0.1:<free port>/
	Node string   // its Erlang node name, unique to the test

	env []string
	cmd *exec.Cmd
	log *natstest.LogBuffer
}

// StartRabbitMQ starts a RabbitMQ node of the test's own from the
// installed binaries, on free loopback ports, with its database, logs,
// configuration and Erlang cookie in a temporary directory and no
// plugins; it stops with the test. The test skips when RabbitMQ is not
// installed, when no epmd answers on 127.0.0.1:4369 (the node would start
// one that outlives the test), or when the node is not up within 60 s.
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	for _, bin := range []string{rabbitmqServer, rabbitmqctl} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("RabbitMQ is not installed (%s): skipping the tests that need a node of their own", bin)
		}
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:4369", time.Second); err != nil {
		t.Skipf("no epmd on 127.0.0.1:4369 (%v): skipping the tests that need a RabbitMQ node of their own (start one with epmd -daemon)", err)
	} else {
		c.Close()
	}
	dir := t.TempDir()
	var r [4]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	ports := natstest.FreePorts(t, 2)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// The node's own cookie: rabbitmqctl reads it from the same HOME.
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte("EVENTMESHTEST"+strings.ToUpper(id)), 0o400); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\nloopback_users = none\n", ports[0])
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &RabbitMQ{
		URL:  &url.URL{Scheme: "amqp", User: url.UserPassword("guest", "guest"), Host: fmt.Sprintf("127.0.0.1:%d", ports[0]), Path: "/"},
		Node: "eventmesh-test-" + id + "@localhost",
		log:  &natstest.LogBuffer{},
	}
	n.env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+n.Node,
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", ports[0]),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", ports[1]),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
	)
	n.cmd = exec.Command(rabbitmqServer)
	n.cmd.Env = n.env
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stopped as a group, by its id
	if err := n.cmd.Start(); err != nil {
		t.Skipf("cannot start a RabbitMQ node: %v", err)
	}
	exited := make(chan struct{})
	go func() { n.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		n.ctl(context.Background(), "stop")
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("the RabbitMQ node's output:\n%s", n.log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), rabbitmqStartTimeout)
	defer cancel()
	if out, err := n.ctl(ctx, "wait", filepath.Join(dir, "rabbitmq.pid"), "--timeout", fmt.Sprint(int(rabbitmqStartTimeout.Seconds()))); err != nil {
		t.Skipf("the private RabbitMQ node did not come up within %s: %v: %s\n%s", rabbitmqStartTimeout, err, out, n.log.String())
	}
	return n
}

// ctl runs rabbitmqctl on the node.
func (n *RabbitMQ) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, rabbitmqctl, append([]string{"-n", n.Node}, args...)...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Ctl runs rabbitmqctl on the node, failing the test when it fails.
func (n *RabbitMQ) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.ctl(ctx, args...)
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// MemoryAlarm sets the node's memory high watermark to 1 byte and waits
// until its memory alarm is on: the node blocks every connection that
// publishes.
func (n *RabbitMQ) MemoryAlarm(t testing.TB) {
	t.Helper()
	n.Ctl(t, "set_vm_memory_high_watermark", "absolute", "1")
	natstest.WaitFor(t, 30*time.Second, "the memory alarm on", func() bool { return n.memoryAlarm(t) })
}

// ClearMemoryAlarm sets the watermark back above what the node uses and
// waits until the alarm is off.
func (n *RabbitMQ) ClearMemoryAlarm(t testing.TB) {
	t.Helper()
	n.Ctl(t, "set_vm_memory_high_watermark", "absolute", "4GB")
	natstest.WaitFor(t, 30*time.Second, "the memory alarm off", func() bool { return !n.memoryAlarm(t) })
}

func (n *RabbitMQ) memoryAlarm(t testing.TB) bool {
	return strings.Contains(n.Ctl(t, "eval", "rabbit_alarm:get_alarms()."), "resource_limit,memory")
}
