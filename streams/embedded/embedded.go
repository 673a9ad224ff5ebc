// Package embedded runs the nats-server that eventmesh embeds by default:
// JetStream on, store under DATA_DIR, explicit store limits, a client
// listener for the nats CLI and external consumers, and a durability
// setting. Only cmd/eventmesh (and tests) import it, so no other binary
// links nats-server.
package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config is the embedded server's configuration.
type Config struct {
	Embedded   bool             `env:"NATS_EMBEDDED" envDefault:"true" desc:"start the embedded NATS server (false: use NATS_URL)"`
	Listen     string           `env:"NATS_LISTEN" envDefault:"127.0.0.1:4222" desc:"client address of the embedded server (host:port; port 0 picks a free one)"`
	Sync       string           `env:"NATS_SYNC" envDefault:"always" desc:"fsync policy: always (an acknowledged event survives power loss) or an interval such as 2m (faster, may lose the last interval on power loss)"`
	DataDir    string           `env:"DATA_DIR" envDefault:"./data" desc:"directory of the embedded server's store and the SQLite archive"`
	MaxStore   streams.ByteSize `env:"NATS_MAX_STORE" envDefault:"4GiB" desc:"JetStream file store limit of the embedded server (all streams together)"`
	MaxMemory  streams.ByteSize `env:"NATS_MAX_MEMORY" envDefault:"256MiB" desc:"JetStream memory store limit of the embedded server"`
	MaxPayload streams.ByteSize `env:"NATS_MAX_PAYLOAD" envDefault:"1MiB" desc:"largest message (headers and body) the embedded server accepts; INGEST_MAX_BODY is derived from it"`
	// StoreKey turns on JetStream's encryption at rest: the store files
	// hold no event in plaintext. Losing the key loses the store.
	StoreKey    string `env:"NATS_STORE_KEY" secret:"true" desc:"encrypt the embedded server's store at rest with this key (at least 32 characters; keep it safe: without it the store cannot be read)"`
	StoreCipher string `env:"NATS_STORE_CIPHER" envDefault:"chacha" desc:"cipher of the encrypted store: chacha (ChaCha20-Poly1305) or aes (AES-GCM)"`
}

// Validate checks the settings; errors name the variable.
func (c Config) Validate() error {
	if _, _, err := c.SyncPolicy(); err != nil {
		return err
	}
	if _, _, err := c.hostPort(); err != nil {
		return err
	}
	if c.StoreCipher != "chacha" && c.StoreCipher != "aes" {
		return fmt.Errorf("NATS_STORE_CIPHER %q: want chacha or aes", c.StoreCipher)
	}
	if c.StoreKey != "" && len(c.StoreKey) < 32 {
		return errors.New("NATS_STORE_KEY is too short: use at least 32 random characters (e.g. openssl rand -base64 32)")
	}
	switch {
	case c.DataDir == "":
		return errors.New("DATA_DIR is empty")
	case c.MaxStore < 64<<20:
		return fmt.Errorf("NATS_MAX_STORE %s: want at least 64MiB", c.MaxStore)
	case c.MaxMemory < 1<<20:
		return fmt.Errorf("NATS_MAX_MEMORY %s: want at least 1MiB", c.MaxMemory)
	case c.MaxPayload < 64<<10 || c.MaxPayload > 64<<20:
		return fmt.Errorf("NATS_MAX_PAYLOAD %s: want 64KiB to 64MiB", c.MaxPayload)
	}
	return nil
}

// SyncPolicy parses NATS_SYNC: always=true, or the flush interval.
func (c Config) SyncPolicy() (always bool, interval time.Duration, err error) {
	if c.Sync == "always" {
		return true, 0, nil
	}
	d, err := streams.ParseDuration(c.Sync)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("NATS_SYNC %q: want always or a positive interval such as 2m", c.Sync)
	}
	return false, d, nil
}

func (c Config) hostPort() (string, int, error) {
	host, p, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", 0, fmt.Errorf("NATS_LISTEN %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("NATS_LISTEN %q: bad port", c.Listen)
	}
	return host, port, nil
}

// Server is a running embedded nats-server.
type Server struct {
	ns  *server.Server
	log *slog.Logger
}

// Start starts the server and waits until it accepts connections. A taken
// port is an error naming NATS_LISTEN.
func Start(c Config, log *slog.Logger) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	always, interval, _ := c.SyncPolicy()
	host, port, _ := c.hostPort()
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// nats-server reports a taken port only in its log; check first so
		// the error is ours and names the variable.
		l, err := net.Listen("tcp", c.Listen)
		if err != nil {
			return nil, fmt.Errorf("NATS_LISTEN %s: %w (another NATS server running? set NATS_LISTEN to a free address, or NATS_EMBEDDED=false with NATS_URL)", c.Listen, err)
		}
		l.Close()
	}
	opts := &server.Options{
		ServerName:         "eventmesh",
		Host:               host,
		Port:               port,
		NoSigs:             true, // we handle signals and shut down in order
		JetStream:          true,
		StoreDir:           filepath.Join(c.DataDir, "nats"),
		JetStreamMaxStore:  int64(c.MaxStore),
		JetStreamMaxMemory: int64(c.MaxMemory),
		MaxPayload:         int32(c.MaxPayload),
		SyncAlways:         always,
		SyncInterval:       interval,
		HTTPPort:           0,
	}
	if always {
		// As the server's own config parser does for sync_interval: always.
		opts.SyncInterval = 2 * time.Minute
	}
	if c.StoreKey != "" {
		opts.JetStreamKey = c.StoreKey
		opts.JetStreamCipher = server.ChaCha
		if c.StoreCipher == "aes" {
			opts.JetStreamCipher = server.AES
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	fl := NewLogger(log.With("component", "nats-server"))
	ns.SetLoggerV2(fl, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		if err := fl.Err(); err != nil {
			return nil, fmt.Errorf("embedded NATS server (NATS_LISTEN %s): %w", c.Listen, err)
		}
		return nil, fmt.Errorf("embedded NATS server (NATS_LISTEN %s, DATA_DIR %s) did not start within 30s", c.Listen, c.DataDir)
	}
	s := &Server{ns: ns, log: log}
	log.Info("embedded NATS server ready", "url", s.ClientURL(), "store", opts.StoreDir,
		"sync", c.Sync, "encrypted", c.StoreKey != "", "max_store", c.MaxStore.String(), "max_payload", c.MaxPayload.String())
	return s, nil
}

// ClientURL is the address the nats CLI and external binaries connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Connect returns an in-process connection (no TCP on the hot path).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append(opts, nats.InProcessServer(s.ns))...)
}

// Shutdown stops the server and waits until it has stopped: JetStream
// flushes its stores first, so nothing acknowledged is lost.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.log.Info("embedded NATS server stopped")
}

// Logger routes a nats-server's log to slog and keeps its fatal error
// instead of exiting: the caller reports it (with the variable to fix, or
// as a test failure). Set it with the server's SetLoggerV2.
type Logger struct {
	log   *slog.Logger
	mu    sync.Mutex
	fatal error
}

// NewLogger returns a Logger writing to log.
func NewLogger(log *slog.Logger) *Logger { return &Logger{log: log} }

func (l *Logger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *Logger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *Logger) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *Logger) Debugf(f string, v ...any)  {}
func (l *Logger) Tracef(f string, v ...any)  {}
func (l *Logger) Fatalf(f string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fatal = fmt.Errorf(f, v...)
	l.log.Error(l.fatal.Error())
}

// Err returns the fatal error the server reported, if any.
func (l *Logger) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
