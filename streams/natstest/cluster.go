package natstest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of in-process nats-servers on loopback,
// each with its store under the test's temporary directory.
type Cluster struct {
	Servers []*server.Server

	t      testing.TB
	mu     sync.Mutex
	killed map[*server.Server]bool
}

// clusterName is the route cluster's name (any stable token).
const clusterName = "eventmesh-test"

// StartCluster starts an n-node JetStream cluster (n ≥ 3 for an R3 stream)
// and returns once every node accepts connections and a meta leader knows
// all n peers, so an R3 stream can be created at once. The nodes are named
// n1, n2, …, fsync every write (the product's default) and are shut down
// when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartCluster: n = %d", n)
	}
	// A port reserved and released may be taken by another process before
	// the node binds it: start again on fresh ports then.
	const tries = 3
	for try := 1; ; try++ {
		c, err := startCluster(t, n)
		if err == nil {
			t.Cleanup(c.shutdown)
			c.waitForMeta(30 * time.Second)
			return c
		}
		if try == tries {
			t.Fatalf("start %d-node cluster: %v", n, err)
		}
		t.Logf("start %d-node cluster (try %d): %v; retrying on new ports", n, try, err)
	}
}

func startCluster(t testing.TB, n int) (*Cluster, error) {
	clientPorts, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routePorts, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i, p := range routePorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	dir := t.TempDir()
	c := &Cluster{t: t, killed: map[*server.Server]bool{}}
	logs := make([]*embedded.Logger, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: clusterName,
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			// Every node gets the full list (its own route is recognised
			// and skipped): a node without routes refuses to run JetStream
			// clustered.
			Routes:    server.RoutesFromStr(strings.Join(routes, ",")),
			JetStream: true,
			StoreDir:  filepath.Join(dir, name),
			// A reservation limit, as for the single server: every stream of
			// the mesh reserves its MaxBytes on each of its replicas
			// (ENMESHED, the DLQ and the outcomes alone exceed 1 GiB), and a
			// leader that has heard the peers' reservations refuses the next
			// stream with "insufficient storage" (a flake under load).
			JetStreamMaxStore:  4 << 30,
			JetStreamMaxMemory: 64 << 20,
			SyncAlways:         true,
			SyncInterval:       2 * time.Minute, // as the server's config parser sets it with sync: always
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			c.shutdown()
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		logs[i] = embedded.NewLogger(Logger(t).With("component", "nats-server", "node", name))
		ns.SetLoggerV2(logs[i], false, false, false)
		c.Servers = append(c.Servers, ns)
	}
	// Start all before waiting on any: a node's routes are only complete
	// once its peers listen.
	for _, ns := range c.Servers {
		ns.Start()
	}
	for i, ns := range c.Servers {
		if !ns.ReadyForConnections(20 * time.Second) {
			c.shutdown()
			if err := logs[i].Err(); err != nil {
				return nil, fmt.Errorf("node %s: %w", ns.Name(), err)
			}
			return nil, fmt.Errorf("node %s did not accept connections within 20s", ns.Name())
		}
	}
	return c, nil
}

// FreePorts reserves n distinct loopback ports as freePorts does, failing
// t when it cannot.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// freePorts reserves n distinct loopback ports by listening on them at
// once, then releases them for the servers to bind.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitForMeta waits until a meta leader is elected, it counts every node
// as a peer and every running node's JetStream is current.
func (c *Cluster) waitForMeta(timeout time.Duration) {
	c.t.Helper()
	WaitFor(c.t, timeout, fmt.Sprintf("a JetStream meta leader with %d peers", len(c.Servers)), func() bool {
		leader := c.MetaLeader()
		if leader == nil || len(leader.JetStreamClusterPeers()) != len(c.Servers) {
			return false
		}
		for _, s := range c.Alive() {
			if !s.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
}

// URLs returns the client URLs of all nodes, comma-separated (for
// nats.Connect and NATS_URL), killed ones included as a client's list
// would be.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Alive returns the nodes not killed.
func (c *Cluster) Alive() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var alive []*server.Server
	for _, s := range c.Servers {
		if !c.killed[s] {
			alive = append(alive, s)
		}
	}
	return alive
}

// MetaLeader returns the live node that is the JetStream meta leader, or
// nil during an election.
func (c *Cluster) MetaLeader() *server.Server {
	for _, s := range c.Alive() {
		if s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// StreamLeader returns the live node leading stream (of the default
// account), or nil while there is none.
func (c *Cluster) StreamLeader(stream string) *server.Server {
	for _, s := range c.Alive() {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s
		}
	}
	return nil
}

// ConsumerLeader returns the live node leading the durable consumer of
// stream (of the default account), or nil while there is none.
func (c *Cluster) ConsumerLeader(stream, consumer string) *server.Server {
	for _, s := range c.Alive() {
		if s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return s
		}
	}
	return nil
}

// Kill shuts node s down and waits until it has stopped. (nats-server's
// Shutdown steps its raft leaders down first: this is a clean stop of one
// node, not a power cut.)
func (c *Cluster) Kill(s *server.Server) {
	c.mu.Lock()
	c.killed[s] = true
	c.mu.Unlock()
	s.Shutdown()
	s.WaitForShutdown()
}

func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for _, s := range c.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Shutdown()
			s.WaitForShutdown()
		}()
	}
	wg.Wait()
}
