package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

var soakFlag = flag.Bool("soak", false, "run the long soak: many more events per scenario, faults repeated throughout (also EVENTMESH_SOAK=1)")

// bin holds the built binaries by name.
var bin map[string]string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every scenario skips itself
	}
	dir, err := os.MkdirTemp("", "eventmesh-chaos")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	start := time.Now()
	bin, err = harness.Build(dir, "producer", "webhook", "archiver", "bridge")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	built := time.Since(start)
	// A test that leaves a listener or a server at its default fails.
	release := harness.HoldDefaultAddrs()
	code := m.Run()
	release()
	os.RemoveAll(dir)
	if testing.Verbose() {
		printSummary(built)
	}
	os.Exit(code)
}

// soak reports whether the long run was asked for.
func soak() bool { return *soakFlag || os.Getenv("EVENTMESH_SOAK") == "1" }

// size picks the short or the soak figure.
func size[T any](short, long T) T {
	if soak() {
		return long
	}
	return short
}

var (
	summaryMu sync.Mutex
	summary   []harness.Report
)

func printSummary(built time.Duration) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(summary) == 0 {
		return
	}
	fmt.Printf("\nchaos summary (binaries built in %s; NATS_SYNC=always):\n", built.Round(100*time.Millisecond))
	fmt.Printf("  %-22s %9s %9s %9s %10s %13s %5s %8s\n", "scenario", "accepted", "stored", "delivered", "duplicates", "dead-lettered", "LOST", "time")
	for _, r := range summary {
		fmt.Printf("  %-22s %9d %9d %9d %10d %13d %5d %8s\n", r.Name, r.Accepted, r.Stored, r.Delivered, r.Duplicates, r.DeadLettered, r.Lost,
			r.Elapsed.Round(100*time.Millisecond))
	}
}

// secret signs the webhooks (WEBHOOK_SECRET); the receiver verifies it.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// durable is the webhook consumer's durable name (WEBHOOK_DURABLE).
const durable = "chaos"

// topology configures a mesh of separate processes.
type topology struct {
	natsURL string
	// streamReplicas is STREAM_REPLICAS; replicas WEBHOOK_REPLICAS and
	// ARCHIVE_REPLICAS (0: as the stream).
	streamReplicas, replicas int
	// maxBytes is STREAM_MAX_BYTES; default 256MiB.
	maxBytes string
	// webhooks names the webhook processes (all on one durable); default
	// one, "w1".
	webhooks []string
	archiver bool
	// bridge, when set, makes the consumer the bridge (no webhook),
	// publishing into a broker where bridge.sink reads.
	bridge *bridgeTarget
	// producerEnv and webhookEnv are added to the defaults.
	producerEnv, webhookEnv []string
}

// mesh is a running mesh: producer, webhook process(es), archiver, and
// the receiver they deliver to.
type mesh struct {
	t        *testing.T
	top      topology
	recv     *harness.Receiver
	producer *harness.Process
	webhooks []*harness.Process
	archiver *harness.Process
	bridge   *harness.Process
	// sink is where deliveries are counted: recv, or the bridge's
	// broker-side consumer (top.bridge.sink).
	sink       harness.Deliveries
	archiveDir string
	ingest     string
	started    time.Time
}

// startNATS starts a nats-server with fsync on every write (NATS_SYNC=always,
// the product default), said here so a change of natstest's default does
// not change what the suite proves.
func startNATS(t *testing.T) *embedded.Server {
	t.Helper()
	return natstest.Start(t, func(c *embedded.Config) { c.Sync = "always" })
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startMesh starts the producer (which creates the stream), then the
// consumers, and waits until each is ready.
func startMesh(t *testing.T, top topology) *mesh {
	t.Helper()
	if len(top.webhooks) == 0 {
		top.webhooks = []string{"w1"}
	}
	if top.maxBytes == "" {
		top.maxBytes = "256MiB"
	}
	if top.streamReplicas == 0 {
		top.streamReplicas = 1
	}
	recv, err := harness.NewReceiver(secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)
	recv.CountHeader("X-Process")
	m := &mesh{t: t, top: top, recv: recv, sink: recv, started: time.Now()}
	if top.bridge != nil {
		top.webhooks = nil
	}

	ingestAddr := freeAddr(t)
	m.ingest = "http://" + ingestAddr
	m.producer = harness.NewProcess("producer", bin["producer"], ingestAddr, append([]string{
		"NATS_URL=" + top.natsURL,
		"INGEST_ADDR=" + ingestAddr,
		fmt.Sprintf("STREAM_REPLICAS=%d", top.streamReplicas),
		"STREAM_MAX_BYTES=" + top.maxBytes,
		"STREAM_DUPLICATE_WINDOW=10m",
		"PUBLISH_TIMEOUT=1s",
		"PUBLISH_ATTEMPTS=3",
	}, top.producerEnv...)...)
	m.track(m.producer)
	if err := m.producer.Start(); err != nil {
		t.Fatal(err)
	}

	for _, name := range top.webhooks {
		addr := freeAddr(t)
		p := harness.NewProcess("webhook-"+name, bin["webhook"], addr, append([]string{
			"NATS_URL=" + top.natsURL,
			"HTTP_ADDR=" + addr,
			"WEBHOOK_URL=" + recv.URL,
			"WEBHOOK_SECRET=" + secret,
			"WEBHOOK_DURABLE=" + durable,
			"WEBHOOK_START=all",
			"WEBHOOK_HEADERS=X-Process: " + name,
			"WEBHOOK_ACK_WAIT=2s",
			"WEBHOOK_BACKOFF=100ms,200ms,500ms,1s",
			"WEBHOOK_MAX_DELIVER=20",
			"WEBHOOK_BREAKER_COOLDOWN=300ms",
			"WEBHOOK_TIMEOUT=5s",
			"WEBHOOK_DRAIN_TIMEOUT=5s",
			fmt.Sprintf("WEBHOOK_REPLICAS=%d", top.replicas),
		}, top.webhookEnv...)...)
		m.track(p)
		m.webhooks = append(m.webhooks, p)
	}
	procs := append([]*harness.Process(nil), m.webhooks...)
	if top.bridge != nil {
		procs = append(procs, m.startBridge(top.bridge))
	}
	if top.archiver {
		addr := freeAddr(t)
		m.archiveDir = t.TempDir()
		m.archiver = harness.NewProcess("archiver", bin["archiver"], addr,
			"NATS_URL="+top.natsURL,
			"HTTP_ADDR="+addr,
			"DATA_DIR="+m.archiveDir,
			"ARCHIVE_ADDR="+freeAddr(t),
			"ARCHIVE_ACK_WAIT=2s",
			"ARCHIVE_BACKOFF=100ms,200ms,500ms,1s",
			"ARCHIVE_MAX_DELIVER=20",
			fmt.Sprintf("ARCHIVE_REPLICAS=%d", top.replicas),
		)
		m.track(m.archiver)
		procs = append(procs, m.archiver)
	}
	// The consumers start side by side: each waits for its own /readyz.
	errs := make(chan error, len(procs))
	for _, p := range procs {
		go func() { errs <- p.Start() }()
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// bridgeTarget is a broker the bridge publishes into and the consumer
// there that counts what arrives.
type bridgeTarget struct {
	// env is BRIDGE_URL and the broker's own settings (BRIDGE_REDIS_STREAM,
	// …), and whatever else the bridge's environment needs.
	env []string
	// sink reads what the bridge published; the test closes it.
	sink brokerSink
	// bin is the bridge binary; default bin["bridge"] (no build tags).
	bin string
}

// brokerSink is a broker-side consumer of the harness (RedisSink, …).
type brokerSink interface {
	harness.Deliveries
	// Err is the consumer's last read error.
	Err() error
}

// brokerName is a name of the test's own on a broker (stream key,
// exchange and queue, topic prefix, subscription).
func brokerName(t *testing.T) string {
	return "eventmesh-chaos-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + router.RandomKey()
}

// redisBridge publishes into a Redis stream of the test's own on the
// server of url, read by a RedisSink.
func redisBridge(t *testing.T, url string) *bridgeTarget {
	t.Helper()
	key := brokerName(t)
	sink, err := harness.NewRedisSink(url, key)
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_REDIS: %v", err)
	}
	t.Cleanup(sink.Close)
	return &bridgeTarget{env: []string{"BRIDGE_URL=" + url, "BRIDGE_REDIS_STREAM=" + key}, sink: sink}
}

// amqpBridge publishes into an exchange of the test's own on the RabbitMQ
// of url, bound to a queue an AMQPSink reads; both deleted after.
func amqpBridge(t *testing.T, url string) *bridgeTarget {
	t.Helper()
	sink, err := harness.NewAMQPSink(url, brokerName(t))
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_AMQP: %v", err)
	}
	t.Cleanup(sink.Close)
	return &bridgeTarget{env: []string{"BRIDGE_URL=" + url, "BRIDGE_AMQP_EXCHANGE=" + sink.Exchange}, sink: sink}
}

// mqttBridge publishes at QoS 1 under a topic prefix of the test's own on
// the MQTT broker of url, where an MQTTSink is subscribed.
func mqttBridge(t *testing.T, url string) *bridgeTarget {
	t.Helper()
	sink, err := harness.NewMQTTSink(url, "eventmesh-chaos/"+t.Name())
	if err != nil {
		t.Fatalf("EVENTMESH_TEST_MQTT: %v", err)
	}
	t.Cleanup(sink.Close)
	return &bridgeTarget{env: []string{"BRIDGE_URL=" + url, "BRIDGE_MQTT_TOPIC=" + sink.Prefix + "/{{trigger}}", "BRIDGE_MQTT_QOS=1"}, sink: sink}
}

// brokerURL returns the broker URL of the variable, or skips the test.
func brokerURL(t *testing.T, variable, example string) string {
	t.Helper()
	u := os.Getenv(variable)
	if u == "" {
		t.Skipf("%s is not set (e.g. %s)", variable, example)
	}
	return u
}

// buildBridge builds the bridge binary with the build tag (kafka, pubsub:
// the schemes whose publisher is linked only with it) and returns its path.
func buildBridge(t *testing.T, tag string) string {
	t.Helper()
	t.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -tags="+tag))
	bins, err := harness.Build(filepath.Join(t.TempDir(), "bin"), "bridge")
	if err != nil {
		t.Fatal(err)
	}
	return bins["bridge"]
}

// startBridge returns the bridge process (not started yet) publishing into
// target, and makes target's sink m.sink.
func (m *mesh) startBridge(target *bridgeTarget) *harness.Process {
	m.t.Helper()
	m.sink = target.sink
	path := target.bin
	if path == "" {
		path = bin["bridge"]
	}
	addr := freeAddr(m.t)
	m.bridge = harness.NewProcess("bridge", path, addr, append([]string{
		"NATS_URL=" + m.top.natsURL,
		"HTTP_ADDR=" + addr,
		"BRIDGE_DURABLE=" + durable,
		"BRIDGE_START=all",
		"BRIDGE_ACK_WAIT=2s",
		"BRIDGE_BACKOFF=100ms,200ms,500ms,1s",
		"BRIDGE_MAX_DELIVER=20",
		"BRIDGE_BREAKER_COOLDOWN=300ms",
		"BRIDGE_DRAIN_TIMEOUT=5s",
		fmt.Sprintf("BRIDGE_REPLICAS=%d", m.top.replicas),
	}, target.env...)...)
	m.track(m.bridge)
	return m.bridge
}

// track kills p at the end of the test and shows its output if the test
// failed.
func (m *mesh) track(p *harness.Process) {
	m.t.Cleanup(func() {
		p.Close()
		if m.t.Failed() {
			m.t.Logf("--- output of %s (started %d times, killed %d) ---\n%s", p.Name, p.Starts(), p.Kills(), p.Tail(8<<10))
		}
	})
}

// load returns a load generator of n events at rate per second (0: flat
// out) against the mesh's ingest, events named after the test.
func (m *mesh) load(n int, rate float64) *harness.LoadGen {
	run := strings.NewReplacer("Test", "", "/", "").Replace(m.t.Name())
	return &harness.LoadGen{URL: m.ingest, Events: n, Rate: rate, Clients: 8,
		Event: func(i int) harness.Event { return harness.MessageReceived(run, i, 0) }}
}

// settle waits until every acknowledged event is delivered or
// dead-lettered (and archived), logs the report, fails the test on any
// loss, and records the report for the summary.
func (m *mesh) settle(js jetstream.JetStream, load *harness.LoadGen, timeout time.Duration) harness.Report {
	m.t.Helper()
	ctx := context.Background()
	rep, err := harness.Settle(ctx, harness.Sources{
		Name: strings.TrimPrefix(m.t.Name(), "Test"), Load: load, Receiver: m.sink, JS: js,
		Consumer: durable, Archive: m.archiver != nil, ArchiveDir: m.archiveDir, Started: m.started,
		Durables: m.durables(),
	}, timeout)
	m.t.Logf("\n%s", rep)
	if err != nil {
		m.t.Error(err)
	}
	if err := rep.Err(); err != nil {
		m.t.Error(err)
	}
	if len(rep.NotArchived) > 0 {
		m.t.Errorf("%d acknowledged events were never archived", len(rep.NotArchived))
	}
	if rep.Accepted == 0 {
		m.t.Error("no event was accepted")
	}
	if s := load.Stats(); s.GaveUp > 0 || s.Rejected > 0 {
		m.t.Logf("load: %s; first: %s", s, s.Errors[0])
	}
	summaryMu.Lock()
	summary = append(summary, rep)
	summaryMu.Unlock()
	return rep
}

// durables are the mesh's durables on ENMESHED.
func (m *mesh) durables() []string {
	if m.archiver != nil {
		return []string{durable, "archiver"}
	}
	return []string{durable}
}

// atAccepted waits until the load generator has n events acknowledged.
func atAccepted(t *testing.T, load *harness.LoadGen, n int) {
	t.Helper()
	natstest.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d events acknowledged", n), func() bool { return load.Accepted() >= n })
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos scenarios run real processes; skipped with -short")
	}
}
