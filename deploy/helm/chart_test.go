package helm

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// name is the name of a component's objects in the test release.
func name(component string) string { return releaseName + "-eventmesh-" + component }

var generated = name("generated")

// The values files the chart is rendered with, and what each must give
// beyond the checks that hold for all (checkAll).
var valuesCases = []struct {
	file  string
	check func(t *testing.T, m *manifests)
}{
	{"", checkDefaults},
	{"all-on.yaml", checkAllOn},
	{"minimal.yaml", checkMinimal},
	{"external-nats.yaml", checkExternalNATS},
	{"webhooks-bridge.yaml", checkWebhooksBridge},
	{"console-without-archive.yaml", checkConsoleWithoutArchive},
}

func TestLint(t *testing.T) {
	dir := chartCopy(t)
	for _, tc := range valuesCases {
		t.Run(caseName(tc.file), func(t *testing.T) {
			res := action.NewLint().Run([]string{dir}, readValues(t, tc.file))
			for _, msg := range res.Messages {
				if msg.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", msg)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("helm lint: %v", err)
			}
		})
	}
}

func caseName(file string) string {
	if file == "" {
		return "defaults"
	}
	return strings.TrimSuffix(file, ".yaml")
}

func TestRender(t *testing.T) {
	dir := chartCopy(t)
	for _, tc := range valuesCases {
		t.Run(caseName(tc.file), func(t *testing.T) {
			vals := readValues(t, tc.file)
			m, err := render(t, dir, vals)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			checkAll(t, m, vals)
			tc.check(t, m)
		})
	}
}

// mustDeployment returns a rendered Deployment, failing the test without it.
func mustDeployment(t *testing.T, m *manifests, component string) *appsv1.Deployment {
	t.Helper()
	d := m.deployment(name(component))
	if d == nil {
		var names []string
		for _, d := range m.deployments {
			names = append(names, d.Name)
		}
		t.Fatalf("no Deployment %s (rendered: %v)", name(component), names)
	}
	return d
}

func mustContainer(t *testing.T, d *appsv1.Deployment, c string) *corev1.Container {
	t.Helper()
	if got := container(d, c); got != nil {
		return got
	}
	t.Fatalf("%s has no container %s", d.Name, c)
	return nil
}

func wantDeployments(t *testing.T, m *manifests, components ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, c := range components {
		want[name(c)] = true
	}
	for _, d := range m.deployments {
		if !want[d.Name] {
			t.Errorf("unexpected Deployment %s", d.Name)
		}
		delete(want, d.Name)
	}
	for n := range want {
		t.Errorf("no Deployment %s", n)
	}
}

// wantValue checks a container's plain variable.
func wantValue(t *testing.T, c *corev1.Container, variable, want string) {
	t.Helper()
	e, ok := envOf(c, variable)
	if !ok || e.ValueFrom != nil || e.Value != want {
		t.Errorf("%s: %s = %+v, want %q", c.Name, variable, e, want)
	}
}

// wantSecret checks that a container's variable comes from a Secret's key.
func wantSecret(t *testing.T, c *corev1.Container, variable, secret, key string) {
	t.Helper()
	e, ok := envOf(c, variable)
	if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != secret || e.ValueFrom.SecretKeyRef.Key != key {
		t.Errorf("%s: %s = %+v, want Secret %s key %s", c.Name, variable, e, secret, key)
	}
}

func wantUnset(t *testing.T, c *corev1.Container, variable string) {
	t.Helper()
	if e, ok := envOf(c, variable); ok {
		t.Errorf("%s sets %s (%+v)", c.Name, variable, e)
	}
}

// The defaults, no overrides: a 3-node JetStream cluster, the producer with a
// generated ingest key, the archiver on SQLite with the console beside it on
// loopback (no password, no Ingress).
func checkDefaults(t *testing.T, m *manifests) {
	wantDeployments(t, m, "producer", "archiver")
	if n := *m.statefulSets[0].Spec.Replicas; n != 3 {
		t.Errorf("NATS runs %d replicas by default, want 3", n)
	}
	p := mustContainer(t, mustDeployment(t, m, "producer"), "producer")
	wantSecret(t, p, "INGEST_API_KEY", generated, "INGEST_API_KEY")
	wantValue(t, p, "STREAM_REPLICAS", "3")
	checkSQLiteArchive(t, m)
	c := mustContainer(t, mustDeployment(t, m, "archiver"), "console")
	wantValue(t, c, "CONSOLE_ADDR", "127.0.0.1:8088")
	wantUnset(t, c, "CONSOLE_PASSWORD")
	wantUnset(t, c, "CONSOLE_HOSTS")
	if len(m.ingresses) != 0 {
		t.Errorf("%d Ingresses by default", len(m.ingresses))
	}
	s := m.secret(generated)
	if s == nil {
		t.Fatalf("no generated Secret %s", generated)
	}
	for _, k := range []string{"INGEST_API_KEY", "ARCHIVE_API_KEY"} {
		if len(s.Data[k]) < 32 {
			t.Errorf("generated %s has %d bytes", k, len(s.Data[k]))
		}
	}
	if _, ok := s.Data["CONSOLE_PASSWORD"]; ok {
		t.Error("a console password is generated although the console stays on loopback")
	}
	for _, want := range []string{"port-forward deploy/" + name("archiver") + " 8088:8088", name("producer") + "." + namespace + ".svc:8080/events/{{trigger}}", "X-API-KEY"} {
		if !strings.Contains(m.notes, want) {
			t.Errorf("NOTES.txt does not say %q:\n%s", want, m.notes)
		}
	}
}

// The SQLite archive: one replica, recreated, its claim mounted at DATA_DIR
// in the archiver and the console of the same pod.
func checkSQLiteArchive(t *testing.T, m *manifests) {
	t.Helper()
	d := mustDeployment(t, m, "archiver")
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("archiver on SQLite: %d replicas, strategy %q; want 1 and Recreate", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	var claim string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "data" && v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	found := false
	for _, pvc := range m.pvcs {
		found = found || pvc.Name == claim
	}
	if claim == "" || !found {
		t.Fatalf("archiver: data volume from claim %q, rendered claims %d", claim, len(m.pvcs))
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		wantValue(t, &c, "DATA_DIR", "/data")
		mounted := false
		for _, vm := range c.VolumeMounts {
			mounted = mounted || (vm.Name == "data" && vm.MountPath == "/data")
		}
		if !mounted {
			t.Errorf("%s: the archive volume is not mounted at /data", c.Name)
		}
		wantUnset(t, &c, "ARCHIVE_DSN")
	}
}

// Everything on: both Ingresses (the console's binding 0.0.0.0 with a
// password and its hosts), the ServiceMonitor, the producer's own NATS
// credentials, auto-accept, a webhook and a bridge.
func checkAllOn(t *testing.T, m *manifests) {
	wantDeployments(t, m, "producer", "archiver", "autoaccept", "webhook-erp", "bridge-rabbit")
	checkSQLiteArchive(t, m)
	c := mustContainer(t, mustDeployment(t, m, "archiver"), "console")
	wantValue(t, c, "CONSOLE_ADDR", "0.0.0.0:8088")
	wantValue(t, c, "CONSOLE_HOSTS", "mesh.example.com")
	wantSecret(t, c, "CONSOLE_PASSWORD", generated, "CONSOLE_PASSWORD")
	if len(m.ingresses) != 2 {
		t.Errorf("%d Ingresses, want the producer's and the console's", len(m.ingresses))
	}
	for _, ing := range m.ingresses {
		var paths []string
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				paths = append(paths, p.Path)
			}
		}
		want := map[string]string{name("producer"): "[/events /connectors]", name("console-ui"): "[/]"}[ing.Name]
		if got := fmt.Sprint(paths); got != want {
			t.Errorf("Ingress %s routes %s, want %s (ingest's /metrics and /sync/status stay in the cluster)", ing.Name, got, want)
		}
	}
	p := mustContainer(t, mustDeployment(t, m, "producer"), "producer")
	wantValue(t, p, "NATS_CREDS", "/etc/eventmesh/nats/nats.creds")
	wantSecret(t, p, "CONNECTOR_API_KEY", "connector", "api-key")
	a := mustContainer(t, mustDeployment(t, m, "autoaccept"), "autoaccept")
	wantValue(t, a, "AUTOACCEPT_ENABLED", "true")
	wantSecret(t, a, "CONNECTOR_API_KEY", "connector", "api-key")
	wantUnset(t, a, "NATS_CREDS")
	w := mustContainer(t, mustDeployment(t, m, "webhook-erp"), "webhook")
	wantValue(t, w, "WEBHOOK_DURABLE", "webhook-erp")
	wantValue(t, w, "WEBHOOK_URL", "https://erp.example.com/enmeshed/{{trigger}}")
	b := mustContainer(t, mustDeployment(t, m, "bridge-rabbit"), "bridge")
	wantValue(t, b, "BRIDGE_DURABLE", "bridge-rabbit")
	wantSecret(t, b, "BRIDGE_URL", "rabbitmq", "url")
}

// The producer alone on a single NATS server: one stream replica.
func checkMinimal(t *testing.T, m *manifests) {
	wantDeployments(t, m, "producer")
	if n := *m.statefulSets[0].Spec.Replicas; n != 1 {
		t.Errorf("NATS without a cluster runs %d replicas, want 1", n)
	}
	wantValue(t, mustContainer(t, mustDeployment(t, m, "producer"), "producer"), "STREAM_REPLICAS", "1")
	if len(m.pvcs) != 0 {
		t.Errorf("%d claims without the archiver", len(m.pvcs))
	}
}

// External NATS and the archive on PostgreSQL: no NATS chart, the archiver
// scales (rolling updates, a PDB), the console is its own Deployment reading
// the same DSN, nothing is generated for keys that were named.
func checkExternalNATS(t *testing.T, m *manifests) {
	wantDeployments(t, m, "producer", "archiver", "console")
	d := mustDeployment(t, m, "archiver")
	if *d.Spec.Replicas != 2 || d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		t.Errorf("archiver on PostgreSQL: %d replicas, strategy %q; want 2, rolling", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 || len(m.pvcs) != 0 {
		t.Errorf("archiver on PostgreSQL: %d containers, %d claims; want 1 and none", len(d.Spec.Template.Spec.Containers), len(m.pvcs))
	}
	a := mustContainer(t, d, "archiver")
	wantSecret(t, a, "ARCHIVE_DSN", "archive-db", "dsn")
	wantUnset(t, a, "DATA_DIR")
	c := mustContainer(t, mustDeployment(t, m, "console"), "console")
	wantSecret(t, c, "ARCHIVE_DSN", "archive-db", "dsn")
	wantSecret(t, c, "NATS_PASSWORD", "nats-auth", "password")
	if m.secret(generated) != nil {
		t.Error("a Secret is generated although every required key names one")
	}
}

// Two webhooks and a bridge: one Deployment each, each its own durable.
func checkWebhooksBridge(t *testing.T, m *manifests) {
	wantDeployments(t, m, "producer", "archiver", "webhook-erp", "webhook-crm", "bridge-mqtt")
	for component, want := range map[string]string{"webhook-erp": "webhook-erp", "webhook-crm": "crm-main"} {
		wantValue(t, mustContainer(t, mustDeployment(t, m, component), "webhook"), "WEBHOOK_DURABLE", want)
	}
	b := mustContainer(t, mustDeployment(t, m, "bridge-mqtt"), "bridge")
	wantValue(t, b, "BRIDGE_DURABLE", "bridge-mqtt")
	wantValue(t, b, "BRIDGE_MQTT_TOPIC", "acme/{{trigger}}")
	wantValue(t, b, "BRIDGE_REPLICAS", "3")
}

// The console without an archiver: its own Deployment on loopback, told
// that the archive is off, with no volume.
func checkConsoleWithoutArchive(t *testing.T, m *manifests) {
	wantDeployments(t, m, "producer", "console")
	d := mustDeployment(t, m, "console")
	c := mustContainer(t, d, "console")
	wantValue(t, c, "ARCHIVE_ENABLED", "false")
	wantValue(t, c, "CONSOLE_ADDR", "127.0.0.1:8088")
	wantUnset(t, c, "DATA_DIR")
	wantUnset(t, c, "ARCHIVE_DSN")
	if len(m.pvcs) != 0 {
		t.Errorf("%d claims without the archiver", len(m.pvcs))
	}
	if !strings.Contains(m.notes, "port-forward deploy/"+name("console")+" 8088:8088") {
		t.Errorf("NOTES.txt does not forward to the console's Deployment:\n%s", m.notes)
	}
}

// Values that cannot work are refused at render time, with a message naming
// what to change.
func TestRenderRefuses(t *testing.T) {
	dir := chartCopy(t)
	webhook := func(name, durable string) map[string]any {
		return map[string]any{"name": name, "durable": durable, "env": map[string]any{"WEBHOOK_URL": "https://" + name + ".example.com/"}}
	}
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"two webhooks on one durable", map[string]any{"webhooks": []any{webhook("a", "shared"), webhook("b", "shared")}},
			`webhooks[b]: durable "shared" is already used by webhooks[a]`},
		{"a bridge on a webhook's default durable", map[string]any{
			"webhooks": []any{webhook("a", "")},
			"bridges":  []any{map[string]any{"name": "b", "durable": "webhook-a", "env": map[string]any{"BRIDGE_URL": "redis://r:6379"}}}},
			`bridges[b]: durable "webhook-a" is already used by webhooks[a]`},
		{"a webhook without its URL", map[string]any{"webhooks": []any{map[string]any{"name": "a"}}},
			"webhooks[a]: set WEBHOOK_URL"},
		{"two SQLite archivers", map[string]any{"archiver": map[string]any{"replicas": 2}},
			"the SQLite archive runs one replica"},
		{"external NATS without a URL", map[string]any{"nats": map[string]any{"enabled": false}},
			"set externalNats.url"},
		{"a variable the chart sets", map[string]any{"producer": map[string]any{"env": map[string]any{"NATS_URL": "nats://x:4222"}}},
			"producer: NATS_URL is set by the chart"},
		{"a Secret without its key", map[string]any{"producer": map[string]any{"secretEnv": map[string]any{"INGEST_API_KEY": map[string]any{"name": "s"}}}},
			"secretEnv.INGEST_API_KEY needs the Secret's name and key"},
		{"a console Ingress without hosts", map[string]any{"console": map[string]any{"ingress": map[string]any{"enabled": true}}},
			"console.ingress.enabled needs at least one entry in console.ingress.hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, dir, tc.vals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("rendered with %v: error %v, want one saying %q", tc.vals, err, tc.want)
			}
		})
	}
}

// The main module takes no Kubernetes or Helm dependency: the chart's tests
// live in this module of their own.
func TestMainModuleHasNoKubernetesDependency(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list in the main module: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, prefix := range []string{"k8s.io/", "sigs.k8s.io/", "helm.sh/"} {
			if strings.HasPrefix(pkg, prefix) {
				t.Errorf("the main module imports %s", pkg)
			}
		}
	}
}
