package connector_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	. "github.com/eventmesh/eventmesh/connector"
)

func validConfig() Config {
	return Config{URL: "https://connector.example.org", APIKey: testKey, APIKeyHeader: DefaultAPIKeyHeader,
		BasePath: DefaultBasePath, Timeout: 10 * time.Second, Attempts: 3}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the error; none: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"disabled", func(c *Config) { c.URL, c.APIKey = "", "" }, nil},
		{"with path prefix", func(c *Config) { c.URL = "http://127.0.0.1:8080/connector/" }, nil},
		{"v6 base path", func(c *Config) { c.BasePath = "/api/v2" }, nil},
		{"no key", func(c *Config) { c.APIKey = "" }, []string{"CONNECTOR_API_KEY"}},
		{"scheme", func(c *Config) { c.URL = "ftp://x" }, []string{"CONNECTOR_URL", "scheme"}},
		{"no host", func(c *Config) { c.URL = "http://" }, []string{"CONNECTOR_URL", "no host"}},
		{"relative", func(c *Config) { c.URL = "connector:8080" }, []string{"CONNECTOR_URL"}},
		{"user info", func(c *Config) { c.URL = "https://admin:hunter2hunter2@x.org" }, []string{"CONNECTOR_URL", "user info"}},
		{"query", func(c *Config) { c.URL = "https://x.org/?token=abc" }, []string{"CONNECTOR_URL", "query"}},
		{"key with newline", func(c *Config) { c.APIKey = "abc\ndef-secret-value" }, []string{"CONNECTOR_API_KEY", "control"}},
		{"header", func(c *Config) { c.APIKeyHeader = "X API KEY" }, []string{"CONNECTOR_API_KEY_HEADER"}},
		{"base path", func(c *Config) { c.BasePath = "api/core/v1" }, []string{"CONNECTOR_BASE_PATH"}},
		{"timeout", func(c *Config) { c.Timeout = 0 }, []string{"CONNECTOR_TIMEOUT"}},
		{"attempts 0", func(c *Config) { c.Attempts = 0 }, []string{"CONNECTOR_ATTEMPTS"}},
		{"attempts 11", func(c *Config) { c.Attempts = 11 }, []string{"CONNECTOR_ATTEMPTS"}},
		{"all at once", func(c *Config) { c.Timeout, c.Attempts = -1, 0 }, []string{"CONNECTOR_TIMEOUT", "CONNECTOR_ATTEMPTS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, secret := range []string{c.APIKey, "hunter2hunter2", "def-secret-value"} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func TestConfigEnabledAndNew(t *testing.T) {
	if (Config{}).Enabled() {
		t.Error("an empty CONNECTOR_URL is enabled")
	}
	if !validConfig().Enabled() {
		t.Error("a set CONNECTOR_URL is not enabled")
	}
	c := validConfig()
	c.URL = ""
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "CONNECTOR_URL") {
		t.Errorf("New without URL: %v", err)
	}
}

func TestConfigLogValueHidesKey(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("connector", "config", validConfig())
	if strings.Contains(b.String(), testKey) {
		t.Fatalf("the key was logged: %s", b.String())
	}
	if !strings.Contains(b.String(), "config.api_key=true") {
		t.Errorf("log does not say the key is set: %s", b.String())
	}
}

// Header names must be RFC 9110 tokens and values free of control
// characters other than tab: every byte is tried, as the last byte of
// CONNECTOR_API_KEY_HEADER and of CONNECTOR_API_KEY, besides the inputs the
// configuration tests of this package and of the webhook consumer use.
func TestConfigHeaderBytes(t *testing.T) {
	const tchars = "!#$%&'*+-.^_`|~"
	for b := 0; b < 256; b++ {
		c := byte(b)
		nameOK := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(tchars, c) >= 0
		valueOK := c >= ' ' && c != 0x7f || c == '\t'
		cfg := validConfig()
		cfg.APIKeyHeader, cfg.APIKey = "X-Key"+string(c), "key"+string(c)
		err := cfg.Validate()
		if got := err == nil || !strings.Contains(err.Error(), "CONNECTOR_API_KEY_HEADER"); got != nameOK {
			t.Errorf("header name byte %#x: accepted %v, want %v (%v)", c, got, nameOK, err)
		}
		if got := err == nil || !strings.Contains(err.Error(), "CONNECTOR_API_KEY:"); got != valueOK {
			t.Errorf("header value byte %#x: accepted %v, want %v (%v)", c, got, valueOK, err)
		}
	}
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"X-API-KEY", "key", true},
		{"Authorization", "Basic Ym9iOnB3", true},
		{"X-Tenant", " a b c ", true},
		{"", "key", false},
		{"X API KEY", "key", false},
		{"X A hdr-s3cret", "v", false},
		{"X-A", "hdr-s3cret\rX-Evil: 1", false},
		{"X-A", "abc\ndef-secret-value", false},
	} {
		cfg := validConfig()
		cfg.APIKeyHeader, cfg.APIKey = tc.name, tc.value
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%q: %q: Validate = %v, want ok %v", tc.name, tc.value, err, tc.ok)
		}
	}
}
