package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles is a certificate and key pair for one of our HTTP servers.
type TLSFiles struct {
	Cert, Key string
}

// Validate checks that both or neither are set; prefix names the
// variables (INGEST_TLS, ARCHIVE_TLS).
func (f TLSFiles) Validate(prefix string) error {
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("%s_CERT and %s_KEY must be set together", prefix, prefix)
	}
	return nil
}

// Config returns a TLS config that serves the pair, re-reading the files
// when they change on disk (so a renewed certificate needs no restart), or
// nil when no pair is set.
func (f TLSFiles) Config(prefix string) (*tls.Config, error) {
	if f.Cert == "" {
		return nil, nil
	}
	r := &certReloader{files: f}
	if _, err := r.load(); err != nil {
		return nil, fmt.Errorf("%s_CERT/%s_KEY: %w", prefix, prefix, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil
}

type certReloader struct {
	files TLSFiles
	mu    sync.Mutex
	cert  *tls.Certificate
	mtime time.Time
}

func (r *certReloader) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return nil, err
	}
	r.cert = &c
	if st, err := os.Stat(r.files.Cert); err == nil {
		r.mtime = st.ModTime()
	}
	return r.cert, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, err := os.Stat(r.files.Cert); err == nil && st.ModTime().After(r.mtime) {
		if c, err := r.load(); err == nil {
			return c, nil
		}
		// A half-written pair: keep serving the old one.
	}
	if r.cert == nil {
		return nil, errors.New("no certificate")
	}
	return r.cert, nil
}
