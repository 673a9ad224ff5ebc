// Package embedded runs the nats-server that eventmesh embeds by default:
// JetStream on, store under DATA_DIR, explicit store limits, a client
// listener for the nats CLI and external consumers, client authentication
// (a user, a token, or a nats-server configuration file), and a durability
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
	"strings"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/router"
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
	// ServerConfig is a nats-server configuration file (accounts, users,
	// nkeys, TLS, ...). The settings above are applied on top of it: they
	// win over what the file says for the same thing.
	ServerConfig string `env:"NATS_SERVER_CONFIG" desc:"nats-server configuration file for the embedded server (authorization, accounts, nkeys, TLS); NATS_LISTEN, DATA_DIR and the other NATS_* server settings override the same settings in it"`
	// Auth is the server's client authentication when there is no
	// ServerConfig; cmd/eventmesh fills it from NATS_USER/NATS_PASSWORD or
	// NATS_TOKEN, the variables its own connection and the admin commands
	// use.
	Auth Auth
}

// Auth is one credential every client of the embedded server must present:
// a user and password, or a token. The zero Auth lets anyone connect.
type Auth struct {
	User, Password, Token string
}

func (a Auth) set() bool { return a.User != "" || a.Token != "" }

// Validate checks the settings; errors name the variable.
func (c Config) Validate() error {
	if _, _, err := c.SyncPolicy(); err != nil {
		return err
	}
	host, _, err := c.hostPort()
	if err != nil {
		return err
	}
	if err := c.validateAuth(host); err != nil {
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

// validateAuth checks the client authentication and refuses a listener
// beyond loopback that any client could use: with no one to authenticate,
// anyone reaching NATS_LISTEN could read every event, publish forged ones
// and delete the stream.
func (c Config) validateAuth(host string) error {
	auth := c.Auth.set()
	if c.ServerConfig != "" {
		opts, err := server.ProcessConfigFile(c.ServerConfig)
		if err != nil {
			return fmt.Errorf("NATS_SERVER_CONFIG %s: %w", c.ServerConfig, err)
		}
		auth = fileAuth(opts)
	} else {
		switch {
		case c.Auth.User != "" && c.Auth.Token != "":
			return errors.New("NATS_USER and NATS_TOKEN are both set: the embedded server takes one of them")
		case c.Auth.User != "" && c.Auth.Password == "":
			return errors.New("NATS_USER is set but NATS_PASSWORD is not: the embedded server needs both")
		case c.Auth.User == "" && c.Auth.Password != "":
			return errors.New("NATS_PASSWORD is set but NATS_USER is not")
		}
	}
	switch {
	case auth || router.LoopbackHost(host):
	case c.ServerConfig != "":
		return fmt.Errorf("NATS_LISTEN %s is reachable from other hosts but NATS_SERVER_CONFIG %s defines no client authentication: add users, accounts or a token to it (or listen on 127.0.0.1)", c.Listen, c.ServerConfig)
	default:
		return fmt.Errorf("NATS_LISTEN %s is reachable from other hosts but the embedded server has no client authentication: set NATS_USER and NATS_PASSWORD, or NATS_TOKEN, or NATS_SERVER_CONFIG (or listen on 127.0.0.1)", c.Listen)
	}
	return nil
}

// fileAuth reports whether a server configuration makes clients
// authenticate: users, nkeys, a token, an operator, auth callout, or TLS
// client certificates.
func fileAuth(o *server.Options) bool {
	return len(o.Users) > 0 || len(o.Nkeys) > 0 || o.Username != "" || o.Authorization != "" ||
		len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0 || o.AuthCallout != nil || o.TLSVerify
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
	cfg Config
}

// Start starts the server and waits until it accepts connections. A taken
// port is an error naming NATS_LISTEN.
func Start(c Config, log *slog.Logger) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
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
	opts, overridden, err := c.options(host, port)
	if err != nil {
		return nil, err
	}
	if len(overridden) > 0 {
		log.Warn("NATS_SERVER_CONFIG sets what eventmesh's variables set: the variables win", "file", c.ServerConfig, "overridden", strings.Join(overridden, ", "))
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
	s := &Server{ns: ns, log: log, cfg: c}
	log.Info("embedded NATS server ready", "url", s.ClientURL(), "auth", c.authKind(), "store", opts.StoreDir,
		"sync", c.Sync, "encrypted", opts.JetStreamKey != "", "max_store", c.MaxStore.String(), "max_payload", c.MaxPayload.String())
	return s, nil
}

// options returns the server's options: the ServerConfig file's, if any,
// with ours on top, and the file's settings that ours replaced ("listen
// (NATS_LISTEN)", for a warning).
func (c Config) options(host string, port int) (*server.Options, []string, error) {
	always, interval, _ := c.SyncPolicy()
	opts := &server.Options{}
	if c.ServerConfig != "" {
		var err error
		if opts, err = server.ProcessConfigFile(c.ServerConfig); err != nil {
			return nil, nil, fmt.Errorf("NATS_SERVER_CONFIG %s: %w", c.ServerConfig, err)
		}
	} else if c.Auth.User != "" {
		opts.Username, opts.Password = c.Auth.User, c.Auth.Password
	} else {
		opts.Authorization = c.Auth.Token
	}
	var overridden []string
	override := func(differs bool, setting string) {
		if differs {
			overridden = append(overridden, setting)
		}
	}
	storeDir := filepath.Join(c.DataDir, "nats")
	override(opts.Host != "" && opts.Host != host || opts.Port != 0 && opts.Port != port, "listen (NATS_LISTEN)")
	override(opts.StoreDir != "" && opts.StoreDir != storeDir, "jetstream.store_dir (DATA_DIR)")
	override(opts.JetStreamMaxStore != 0 && opts.JetStreamMaxStore != int64(c.MaxStore), "jetstream.max_file_store (NATS_MAX_STORE)")
	override(opts.JetStreamMaxMemory != 0 && opts.JetStreamMaxMemory != int64(c.MaxMemory), "jetstream.max_memory_store (NATS_MAX_MEMORY)")
	override(opts.MaxPayload != 0 && opts.MaxPayload != int32(c.MaxPayload), "max_payload (NATS_MAX_PAYLOAD)")
	override((opts.SyncAlways || opts.SyncInterval != 0) && (opts.SyncAlways != always || !always && opts.SyncInterval != interval), "jetstream.sync_interval (NATS_SYNC)")
	override(opts.JetStreamKey != "" && c.StoreKey != "", "jetstream.key (NATS_STORE_KEY)")
	if opts.ServerName == "" {
		opts.ServerName = "eventmesh"
	}
	opts.Host, opts.Port = host, port
	opts.NoSigs = true // we handle signals and shut down in order
	opts.JetStream = true
	opts.StoreDir = storeDir
	opts.JetStreamMaxStore, opts.JetStreamMaxMemory = int64(c.MaxStore), int64(c.MaxMemory)
	opts.MaxPayload = int32(c.MaxPayload)
	opts.SyncAlways, opts.SyncInterval = always, interval
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
	return opts, overridden, nil
}

// authKind names the client authentication, for the log.
func (c Config) authKind() string {
	switch {
	case c.ServerConfig != "":
		return "NATS_SERVER_CONFIG"
	case c.Auth.User != "":
		return "user"
	case c.Auth.Token != "":
		return "token"
	}
	return "none"
}

// ClientURL is the address the nats CLI and external binaries connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Connect returns an in-process connection (no TCP on the hot path). It
// authenticates like any client: opts carry the credentials. A refusal is
// an error naming the variables that hold them.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append(opts, nats.InProcessServer(s.ns))
	// In process, a refused CONNECT leaves both ends of the pipe writing
	// until the server's write deadline (10s) closes it, and the client
	// sees a closed pipe rather than the refusal: a first connection with
	// a short write timeout tells quickly whether the credentials pass.
	probe, err := nats.Connect("", append(opts, nats.FlusherTimeout(time.Second), nats.NoReconnect())...)
	if err != nil {
		if s.cfg.ServerConfig != "" {
			return nil, fmt.Errorf("the embedded server did not accept eventmesh's own connection (%w): set NATS_CREDS, or NATS_USER and NATS_PASSWORD (or NATS_NKEY, NATS_TOKEN), to a user that NATS_SERVER_CONFIG %s defines", err, s.cfg.ServerConfig)
		}
		return nil, fmt.Errorf("the embedded server did not accept eventmesh's own connection (%w): check NATS_USER/NATS_PASSWORD or NATS_TOKEN", err)
	}
	probe.Close()
	return nats.Connect("", opts...)
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
