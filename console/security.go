package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// cookieName is the session cookie's name.
const cookieName = "eventmesh_console"

// csrfField is the form field carrying the CSRF token.
const csrfField = "csrf"

// Login attempts: a burst of loginBurst per client address, then one per
// loginEvery.
const (
	loginBurst = 5
	loginEvery = 12 * time.Second
	// maxLimiters bounds the remembered client addresses; beyond it the
	// oldest are forgotten.
	maxLimiters = 10000
)

// security holds what the checks of wrap need.
type security struct {
	cfg   Config
	now   func() time.Time
	key   []byte // signs sessions and CSRF tokens
	hosts []string

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	order    []string
}

// newSecurity derives the key: from CONSOLE_PASSWORD, so every replica
// and every restart accepts the same cookies; without a password a random
// one per process (there are no sessions then, only CSRF tokens).
func newSecurity(cfg Config, now func() time.Time) (*security, error) {
	s := &security{cfg: cfg, now: now, hosts: cfg.AllowedHosts(), limiters: map[string]*rate.Limiter{}}
	if cfg.Password != "" {
		m := hmac.New(sha256.New, []byte("eventmesh console session key v1"))
		m.Write([]byte(cfg.Password))
		s.key = m.Sum(nil)
	} else {
		s.key = make([]byte, 32)
		if _, err := rand.Read(s.key); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *security) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "\n")))
	return m.Sum(nil)
}

// wrap puts the checks around h, in order: headers that keep pages out of
// caches and frames; the Host check; the login (when a password is set);
// for a POST, the Origin and the CSRF token, and read-only mode.
func (s *security) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
			"frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		if !s.hostAllowed(r.Host) {
			http.Error(w, "Host "+strconv.Quote(r.Host)+" is not one this console answers to (CONSOLE_HOSTS)", http.StatusForbidden)
			return
		}
		public := strings.HasPrefix(r.URL.Path, "/static/") || r.URL.Path == "/login"
		if s.cfg.Password != "" && !public && !s.loggedIn(r) {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := s.checkOrigin(r); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			if !s.validCSRF(r) {
				http.Error(w, "missing or invalid CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
			if s.cfg.ReadOnly && r.URL.Path != "/login" && r.URL.Path != "/logout" {
				http.Error(w, "this console is read-only (CONSOLE_READONLY=true)", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// hostAllowed compares host (a Host header) without its port.
func (s *security) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	return slices.Contains(s.hosts, host)
}

// checkOrigin requires an Origin (or, from browsers that send none, a
// Referer) naming this console: its host equal to the request's Host.
func (s *security) checkOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return errors.New("an action needs an Origin header: send it from the console's own pages")
	}
	u, err := url.Parse(o)
	if err != nil || !strings.EqualFold(u.Host, r.Host) {
		return errors.New("the request comes from another site (Origin " + strconv.Quote(o) + "): refused")
	}
	return nil
}

// session returns the session cookie's value, "" without one.
func session(r *http.Request) string {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// newSession returns a cookie value: the expiry and a signature of it.
func (s *security) newSession(expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(s.mac("session", exp))
}

// loggedIn checks the session cookie's signature and expiry.
func (s *security) loggedIn(r *http.Request) bool {
	exp, sig, ok := strings.Cut(session(r), ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", exp)) {
		return false
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && s.now().Unix() < t
}

// csrfToken is bound to the session (and to the key): a token from one
// login is worthless in another.
func (s *security) csrfToken(r *http.Request) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", session(r)))
}

func (s *security) validCSRF(r *http.Request) bool {
	got := r.PostFormValue(csrfField)
	if got == "" {
		got = r.Header.Get("X-CSRF-Token")
	}
	want := s.csrfToken(r)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// checkPassword compares in constant time (of the MACs, so the length of
// the password does not show either).
func (s *security) checkPassword(pw string) bool {
	return s.cfg.Password != "" && hmac.Equal(s.mac("password", pw), s.mac("password", s.cfg.Password))
}

// allowLogin spends one login attempt of the client at addr.
func (s *security) allowLogin(addr string) bool {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limiters[addr]
	if !ok {
		if len(s.order) >= maxLimiters {
			delete(s.limiters, s.order[0])
			s.order = s.order[1:]
		}
		l = rate.NewLimiter(rate.Every(loginEvery), loginBurst)
		s.limiters[addr] = l
		s.order = append(s.order, addr)
	}
	return l.AllowN(s.now(), 1)
}

// remote is the client's address for the log of actions.
func remote(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
