package bridge_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/consumers/bridge/bridgetest"
)

// secret is the password every test URL carries: no error, log value or
// redacted URL may show it.
const secret = "s3cret-pw"

// load parses the BRIDGE_* variables in kv ("NAME=value" pairs) with their
// defaults, as a binary does.
func load(t *testing.T, kv ...string) bridge.Config {
	t.Helper()
	vars := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		vars[k] = v
	}
	c, err := env.ParseAsWithOptions[bridge.Config](env.Options{Environment: vars})
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	return c
}

func TestConfigValid(t *testing.T) {
	for _, u := range []string{
		"amqp://guest:" + secret + "@127.0.0.1:5672/",
		"amqps://rabbit.example/vhost",
		"mqtt://127.0.0.1:1883",
		"mqtts://user:" + secret + "@broker.example:8883",
		"redis://127.0.0.1:6379/0",
		"rediss://:" + secret + "@redis.example:6380/2",
		"pubsub://my-project/my-topic",
		"kafka://k1:9092,k2:9092/events",
	} {
		c := load(t, "BRIDGE_URL="+u)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.Redacted(), err)
		}
		if !c.Enabled() {
			t.Errorf("%s: not enabled", c.Redacted())
		}
	}
	if load(t).Enabled() {
		t.Error("enabled without BRIDGE_URL")
	}
	if err := load(t).Validate(); err != nil {
		t.Errorf("no BRIDGE_URL (the bridge does not run): %v", err)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	u := "BRIDGE_URL=amqp://guest:" + secret + "@127.0.0.1:5672/?token=" + secret
	missing := filepath.Join(t.TempDir(), "missing.pem")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := bridgetest.WriteCert(t)
	for _, tc := range []struct {
		vars []string
		want string
	}{
		{[]string{"BRIDGE_URL=nats://u:" + secret + "@h:4222"}, `BRIDGE_URL: scheme "nats"`},
		{[]string{"BRIDGE_URL=amqp://u:" + secret + "@h:99999999999/%zz"}, "BRIDGE_URL: not a valid URL"},
		{[]string{"BRIDGE_URL=amqp:///vhost?password=" + secret}, "BRIDGE_URL: no host"},
		{[]string{u, "BRIDGE_ORDER=fifo"}, "BRIDGE_ORDER"},
		{[]string{u, "BRIDGE_TRIGGERS=transport..x"}, "BRIDGE_TRIGGERS"},
		{[]string{u, "BRIDGE_DURABLE=a.b"}, "BRIDGE_DURABLE"},
		{[]string{u, "BRIDGE_MAX_DELIVER=0"}, "BRIDGE_MAX_DELIVER"},
		{[]string{u, "BRIDGE_START=yesterday"}, "BRIDGE_START"},
		{[]string{u, "BRIDGE_TLS_CA=" + cert}, "speaks no TLS: use amqps://"},
		{[]string{"BRIDGE_URL=pubsub://p/t", "BRIDGE_TLS_CA=" + cert}, "BRIDGE_TLS_CA"},
		{[]string{"BRIDGE_URL=amqps://u:" + secret + "@h/", "BRIDGE_TLS_CA=" + missing}, "BRIDGE_TLS_CA"},
		{[]string{"BRIDGE_URL=amqps://u:" + secret + "@h/", "BRIDGE_TLS_CA=" + garbage}, "BRIDGE_TLS_CA"},
		{[]string{"BRIDGE_URL=amqps://u:" + secret + "@h/", "BRIDGE_TLS_CERT=" + cert}, "BRIDGE_TLS_CERT and BRIDGE_TLS_KEY"},
		{[]string{"BRIDGE_URL=amqps://u:" + secret + "@h/", "BRIDGE_TLS_CERT=" + cert, "BRIDGE_TLS_KEY=" + garbage}, "BRIDGE_TLS_CERT/BRIDGE_TLS_KEY"},
		{[]string{"BRIDGE_URL=mqtts://u:" + secret + "@h/", "BRIDGE_TLS_CERT=" + key, "BRIDGE_TLS_KEY=" + key}, "BRIDGE_TLS_CERT/BRIDGE_TLS_KEY"},
	} {
		c := load(t, tc.vars...)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.vars, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%v: the error shows a credential: %v", tc.vars, err)
		}
	}
	// The format is checked when parsed, and by Validate for a Config
	// built in code.
	if _, err := env.ParseAsWithOptions[bridge.Config](env.Options{Environment: map[string]string{"BRIDGE_FORMAT": "xml"}}); err == nil {
		t.Error("BRIDGE_FORMAT=xml parsed")
	}
	c := load(t, u)
	c.Format = "xml"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "BRIDGE_FORMAT") {
		t.Errorf("BRIDGE_FORMAT xml: %v", err)
	}
}

func TestDurableName(t *testing.T) {
	base := load(t, "BRIDGE_URL=amqp://guest:guest@Rabbit.Example:5672/prod", "BRIDGE_AMQP_EXCHANGE=events")
	name := base.DurableName()
	if !regexp.MustCompile(`^bridge-[0-9a-f]{8}$`).MatchString(name) {
		t.Fatalf("durable %q: want bridge-<8 hex digits>", name)
	}
	// The contract: SHA-256 over scheme://host(s) lower-cased + path, a
	// newline and the destination (a restart of a new version keeps it).
	sum := sha256.Sum256([]byte("amqp://rabbit.example:5672/prod\nevents/{{trigger}}"))
	if want := "bridge-" + hex.EncodeToString(sum[:4]); name != want {
		t.Errorf("durable %s, want %s", name, want)
	}
	same := []bridge.Config{
		load(t, "BRIDGE_URL=amqp://other:creds@rabbit.example:5672/prod", "BRIDGE_AMQP_EXCHANGE=events"),
		load(t, "BRIDGE_URL=amqp://rabbit.example:5672/prod?heartbeat=10", "BRIDGE_AMQP_EXCHANGE=events"),
	}
	for _, c := range same {
		if c.DurableName() != name {
			t.Errorf("%s: durable %s, want %s (credentials and query do not name a destination)", c.Redacted(), c.DurableName(), name)
		}
	}
	differ := []bridge.Config{
		load(t, "BRIDGE_URL=amqps://rabbit.example:5672/prod", "BRIDGE_AMQP_EXCHANGE=events"),
		load(t, "BRIDGE_URL=amqp://rabbit2.example:5672/prod", "BRIDGE_AMQP_EXCHANGE=events"),
		load(t, "BRIDGE_URL=amqp://rabbit.example:5672/test", "BRIDGE_AMQP_EXCHANGE=events"),
		load(t, "BRIDGE_URL=amqp://rabbit.example:5672/prod", "BRIDGE_AMQP_EXCHANGE=audit"),
		load(t, "BRIDGE_URL=amqp://rabbit.example:5672/prod", "BRIDGE_AMQP_EXCHANGE=events", "BRIDGE_AMQP_ROUTING_KEY=all"),
	}
	seen := map[string]string{name: base.Redacted()}
	for _, c := range differ {
		n := c.DurableName()
		if prev, ok := seen[n]; ok {
			t.Errorf("%s and %s share durable %s", c.Redacted(), prev, n)
		}
		seen[n] = c.Redacted()
	}
	// Each broker's destination counts.
	if load(t, "BRIDGE_URL=mqtt://h:1883", "BRIDGE_MQTT_TOPIC=a/{{trigger}}").DurableName() ==
		load(t, "BRIDGE_URL=mqtt://h:1883", "BRIDGE_MQTT_TOPIC=b/{{trigger}}").DurableName() {
		t.Error("two MQTT topics share a durable")
	}
	if load(t, "BRIDGE_URL=redis://h:6379/0").DurableName() ==
		load(t, "BRIDGE_URL=redis://h:6379/0", "BRIDGE_REDIS_STREAM=other").DurableName() {
		t.Error("two Redis streams share a durable")
	}
	if got := load(t, "BRIDGE_URL=amqp://h/", "BRIDGE_DURABLE=mine").DurableName(); got != "mine" {
		t.Errorf("BRIDGE_DURABLE=mine gave %s", got)
	}
}

func TestRedactedAndLogValue(t *testing.T) {
	c := load(t, "BRIDGE_URL=rediss://admin:"+secret+"@Redis.Example:6380/2?password="+secret)
	r := c.Redacted()
	if strings.Contains(r, secret) || strings.Contains(r, "admin") {
		t.Errorf("Redacted() = %s shows credentials", r)
	}
	if want := "rediss://REDACTED@Redis.Example:6380/2"; r != want {
		t.Errorf("Redacted() = %s, want %s", r, want)
	}
	if got := c.LogValue().String(); strings.Contains(got, secret) {
		t.Errorf("LogValue shows a credential: %s", got)
	}
}

func TestTLSConfig(t *testing.T) {
	cert, key := bridgetest.WriteCert(t)
	c := load(t, "BRIDGE_URL=amqps://u:p@rabbit.example:5671/", "BRIDGE_TLS_CA="+cert, "BRIDGE_TLS_CERT="+cert, "BRIDGE_TLS_KEY="+key)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := c.TLSConfig()
	if err != nil || tc == nil {
		t.Fatalf("TLSConfig: %v, %v", tc, err)
	}
	if tc.ServerName != "rabbit.example" || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Errorf("TLS config: server name %q, roots %v, %d client certificates", tc.ServerName, tc.RootCAs != nil, len(tc.Certificates))
	}
	// The system's roots when no CA is given.
	tc, err = load(t, "BRIDGE_URL=mqtts://broker.example:8883").TLSConfig()
	if err != nil || tc == nil || tc.RootCAs != nil || tc.ServerName != "broker.example" {
		t.Errorf("mqtts without BRIDGE_TLS_CA: %+v, %v", tc, err)
	}
	for _, u := range []string{"amqp://h/", "mqtt://h", "redis://h", "kafka://k1:9092/t"} {
		if tc, err := load(t, "BRIDGE_URL="+u).TLSConfig(); tc != nil || err != nil {
			t.Errorf("%s: TLS config %v, %v; want none", u, tc, err)
		}
	}
	tc, err = load(t, "BRIDGE_URL=kafka://k1:9092,k2:9092/t", "BRIDGE_TLS_CA="+cert).TLSConfig()
	if err != nil || tc == nil || tc.ServerName != "" {
		t.Errorf("kafka with BRIDGE_TLS_CA: %+v, %v; want TLS without one server name", tc, err)
	}
	o, err := c.Options(nil)
	if err != nil || o.TLS == nil || o.URL.Scheme != "amqps" || o.Durable != c.DurableName() || o.Log == nil {
		t.Errorf("Options: %+v, %v", o, err)
	}
}
