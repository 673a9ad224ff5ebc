package helm

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkAll runs every check that holds for any values file.
func checkAll(t *testing.T, m *manifests, vals chartutil.Values) {
	t.Run("env", func(t *testing.T) { checkEnv(t, m) })
	t.Run("probes", func(t *testing.T) { checkProbes(t, m) })
	t.Run("secrets", func(t *testing.T) { checkSecretRefs(t, m, vals) })
	t.Run("security", func(t *testing.T) { checkSecurity(t, m) })
	t.Run("nats", func(t *testing.T) { checkNATS(t, m, vals) })
	t.Run("pdb", func(t *testing.T) { checkPDBs(t, m) })
	t.Run("services", func(t *testing.T) { checkServices(t, m) })
	t.Run("servicemonitor", func(t *testing.T) { checkServiceMonitor(t, m, vals) })
}

// ours are the chart's own Deployments (all of them: the stand-in NATS
// chart renders a StatefulSet).
func eachContainer(m *manifests, f func(d *appsv1.Deployment, c *corev1.Container)) {
	for i := range m.deployments {
		d := &m.deployments[i]
		for j := range d.Spec.Template.Spec.Containers {
			f(d, &d.Spec.Template.Spec.Containers[j])
		}
	}
}

// Every variable a container gets is one its binary reads (a misspelt or
// foreign name would be ignored silently), and none is given twice.
func checkEnv(t *testing.T, m *manifests) {
	eachContainer(m, func(d *appsv1.Deployment, c *corev1.Container) {
		bin := binaryOf(c)
		h, ok := helps[bin]
		if !ok {
			t.Errorf("%s/%s runs %q, not one of the module's commands %v", d.Name, c.Name, c.Command, commands)
			return
		}
		if h.err != nil {
			t.Errorf("%s/%s: %v", d.Name, c.Name, h.err)
			return
		}
		seen := map[string]bool{}
		for _, e := range c.Env {
			if seen[e.Name] {
				t.Errorf("%s/%s sets %s twice", d.Name, c.Name, e.Name)
			}
			seen[e.Name] = true
			if !h.accepts(e.Name) {
				t.Errorf("%s/%s sets %s, which %s does not read (not in its --help)", d.Name, c.Name, e.Name, bin)
			}
		}
	})
}

// hostPort splits an address variable's value.
func hostPort(v string) (string, int32, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	return host, int32(n), err
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// portOf resolves a probe's or a Service's port (a number or a port name)
// on a container.
func portOf(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// Liveness on /healthz and readiness on /readyz, on the port of the address
// the binary serves them on (the variable its --help says serves /healthz),
// which listens beyond the pod's loopback; every declared container port is
// one the container's address variables listen on.
func checkProbes(t *testing.T, m *manifests) {
	eachContainer(m, func(d *appsv1.Deployment, c *corev1.Container) {
		where := d.Name + "/" + c.Name
		h := helps[binaryOf(c)]
		if h.err != nil || h.vars == nil {
			t.Errorf("%s: cannot check the probes: the binary's --help is not known (%v)", where, h.err)
			return
		}
		var healthPort int32
		for _, name := range h.healthVars() {
			if e, ok := envOf(c, name); ok {
				host, port, err := hostPort(e.Value)
				if err != nil {
					t.Errorf("%s: %s=%q: %v", where, name, e.Value, err)
					continue
				}
				if loopback(host) {
					t.Errorf("%s: %s=%s listens on the pod's loopback, where the kubelet's probes cannot reach it", where, name, e.Value)
				}
				healthPort = port
			}
		}
		if healthPort == 0 {
			t.Errorf("%s sets none of %v, the addresses %s serves /healthz on", where, h.healthVars(), binaryOf(c))
			return
		}
		for _, p := range []struct {
			kind, path string
			probe      *corev1.Probe
		}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s has no HTTP %s probe", where, p.kind)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s: %s probe on %s, want %s", where, p.kind, p.probe.HTTPGet.Path, p.path)
			}
			if port, ok := portOf(c, p.probe.HTTPGet.Port); !ok || port != healthPort {
				t.Errorf("%s: %s probe on port %s (%d), the binary serves /healthz on %d", where, p.kind, p.probe.HTTPGet.Port.String(), port, healthPort)
			}
		}
		listening := map[int32]bool{}
		for _, e := range c.Env {
			if !strings.HasSuffix(e.Name, "_ADDR") || e.Value == "" {
				continue
			}
			if host, port, err := hostPort(e.Value); err == nil && !loopback(host) {
				listening[port] = true
			}
		}
		for _, cp := range c.Ports {
			if !listening[cp.ContainerPort] {
				t.Errorf("%s declares port %s (%d), where no address variable of it listens beyond loopback", where, cp.Name, cp.ContainerPort)
			}
		}
	})
}

// declaredSecrets walks the values for every secretEnv entry ({name, key})
// and every natsCredentials.secretName.
func declaredSecrets(v any, under string, refs map[string]bool, names map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		if under == "secretEnv" {
			for _, ref := range v {
				if r, ok := ref.(map[string]any); ok {
					refs[fmt.Sprintf("%v/%v", r["name"], r["key"])] = true
				}
			}
			return
		}
		if under == "natsCredentials" {
			if s, ok := v["secretName"].(string); ok && s != "" {
				names[s] = true
			}
		}
		for k, child := range v {
			declaredSecrets(child, k, refs, names)
		}
	case chartutil.Values:
		declaredSecrets(map[string]any(v), under, refs, names)
	case []any:
		for _, child := range v {
			declaredSecrets(child, under, refs, names)
		}
	}
}

// Every Secret key a container refers to is declared in the values (a
// secretEnv entry) or is a key of a Secret the chart renders (the generated
// one); every mounted Secret is one the values name.
func checkSecretRefs(t *testing.T, m *manifests, vals chartutil.Values) {
	refs, names := map[string]bool{}, map[string]bool{}
	declaredSecrets(vals, "", refs, names)
	eachContainer(m, func(d *appsv1.Deployment, c *corev1.Container) {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			r := e.ValueFrom.SecretKeyRef
			if r == nil {
				t.Errorf("%s/%s: %s comes from something other than a Secret", d.Name, c.Name, e.Name)
				continue
			}
			if refs[r.Name+"/"+r.Key] {
				continue
			}
			if s := m.secret(r.Name); s != nil {
				if _, ok := s.Data[r.Key]; ok {
					continue
				}
			}
			t.Errorf("%s/%s: %s refers to key %q of Secret %q, which neither the values declare nor the chart renders", d.Name, c.Name, e.Name, r.Key, r.Name)
		}
	})
	for _, d := range m.deployments {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil && !names[v.Secret.SecretName] {
				t.Errorf("%s mounts Secret %q, which the values do not name", d.Name, v.Secret.SecretName)
			}
		}
	}
}

// Pods run as non-root; containers with a read-only root file system, no
// privilege escalation and every capability dropped.
func checkSecurity(t *testing.T, m *manifests) {
	for _, d := range m.deployments {
		ps := d.Spec.Template.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
			t.Errorf("%s: the pod is not runAsNonRoot: %+v", d.Name, ps)
		}
	}
	eachContainer(m, func(d *appsv1.Deployment, c *corev1.Container) {
		where := d.Name + "/" + c.Name
		s := c.SecurityContext
		if s == nil {
			t.Errorf("%s has no securityContext", where)
			return
		}
		if s.RunAsNonRoot == nil || !*s.RunAsNonRoot {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		if s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if s.Capabilities == nil || !slices.Contains(s.Capabilities.Drop, "ALL") || len(s.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities %+v, want drop [ALL] and nothing added", where, s.Capabilities)
		}
	})
}

// natsEnabled reads nats.enabled from the values (true unless set false).
func natsEnabled(vals chartutil.Values) bool {
	v, err := vals.PathValue("nats.enabled")
	return err != nil || v != false
}

// NATS_URL points at the NATS chart's Service (or externalNats.url), and
// STREAM_REPLICAS and every consumer's *_REPLICAS equal the NATS servers'
// replicas (or externalNats.streamReplicas); the NATS chart gets JetStream
// with file storage.
func checkNATS(t *testing.T, m *manifests, vals chartutil.Values) {
	var wantURL string
	var want int32
	if natsEnabled(vals) {
		if len(m.statefulSets) != 1 {
			t.Fatalf("nats.enabled: %d NATS StatefulSets rendered, want the dependency's one", len(m.statefulSets))
		}
		s := m.statefulSets[0]
		want = *s.Spec.Replicas
		if s.Annotations["stand-in/jetstream"] != "true" || s.Annotations["stand-in/file-store"] != "true" {
			t.Errorf("the NATS chart gets config.jetstream.enabled=%s, fileStore.enabled=%s; want both true",
				s.Annotations["stand-in/jetstream"], s.Annotations["stand-in/file-store"])
		}
		found := false
		for _, svc := range m.services {
			for _, p := range svc.Spec.Ports {
				if svc.Name == s.Name && p.Port == 4222 {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no Service %s with port 4222 from the NATS chart", s.Name)
		}
		wantURL = "nats://" + s.Name + ":4222"
	} else {
		if len(m.statefulSets) != 0 {
			t.Errorf("nats.enabled=false, yet %d StatefulSets rendered", len(m.statefulSets))
		}
		u, _ := vals.PathValue("externalNats.url")
		wantURL, _ = u.(string)
		r, err := vals.PathValue("externalNats.streamReplicas")
		if err != nil {
			t.Fatalf("externalNats.streamReplicas: %v", err)
		}
		want = int32(r.(float64))
	}
	producers := 0
	eachContainer(m, func(d *appsv1.Deployment, c *corev1.Container) {
		where := d.Name + "/" + c.Name
		if e, _ := envOf(c, "NATS_URL"); e.Value != wantURL {
			t.Errorf("%s: NATS_URL=%q, want %q", where, e.Value, wantURL)
		}
		if binaryOf(c) == "producer" {
			producers++
			if _, ok := envOf(c, "STREAM_REPLICAS"); !ok {
				t.Errorf("%s: no STREAM_REPLICAS", where)
			}
		}
		for _, e := range c.Env {
			if e.Name != "STREAM_REPLICAS" && !(strings.HasSuffix(e.Name, "_REPLICAS") && binaryOf(c) != "producer") {
				continue
			}
			if e.Value != strconv.Itoa(int(want)) {
				t.Errorf("%s: %s=%q, the NATS servers run %d replicas", where, e.Name, e.Value, want)
			}
		}
	})
	if producers == 0 && m.deployment(releaseName+"-eventmesh-producer") != nil {
		t.Error("the producer Deployment runs no producer")
	}
}

func selects(selector map[string]string, podLabels map[string]string) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(podLabels))
}

// A PodDisruptionBudget for each Deployment with more than one replica, none
// for a single replica (it would block every node drain).
func checkPDBs(t *testing.T, m *manifests) {
	for _, d := range m.deployments {
		n := 0
		for _, p := range m.pdbs {
			if p.Spec.Selector != nil && selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				n++
			}
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		switch {
		case replicas > 1 && n != 1:
			t.Errorf("%s runs %d replicas and has %d PodDisruptionBudgets, want 1", d.Name, replicas, n)
		case replicas <= 1 && n != 0:
			t.Errorf("%s runs %d replica and has %d PodDisruptionBudgets, want none", d.Name, replicas, n)
		}
	}
}

// Every Service of the chart selects pods of a Deployment, each of its
// ports names a port of a selected container, and every Ingress sends to
// a Service port that exists.
func checkServices(t *testing.T, m *manifests) {
	for _, svc := range m.services {
		if natsEnabledService(m, svc) {
			continue
		}
		var containers []*corev1.Container
		for i := range m.deployments {
			d := &m.deployments[i]
			if selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				for j := range d.Spec.Template.Spec.Containers {
					containers = append(containers, &d.Spec.Template.Spec.Containers[j])
				}
			}
		}
		if len(containers) == 0 {
			t.Errorf("Service %s selects no Deployment's pods", svc.Name)
			continue
		}
		for _, p := range svc.Spec.Ports {
			ok := false
			for _, c := range containers {
				if _, found := portOf(c, p.TargetPort); found {
					ok = true
				}
			}
			if !ok {
				t.Errorf("Service %s port %s targets %s, which no selected container declares", svc.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for _, ing := range m.ingresses {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				if b == nil || !serviceHasPort(m, b.Name, b.Port.Name) {
					t.Errorf("Ingress %s (%s) sends to %+v, no such Service port", ing.Name, r.Host, b)
				}
			}
		}
	}
}

// natsEnabledService tells the stand-in NATS chart's Service from ours.
func natsEnabledService(m *manifests, svc corev1.Service) bool {
	for _, s := range m.statefulSets {
		if s.Name == svc.Name {
			return true
		}
	}
	return false
}

func serviceHasPort(m *manifests, name, port string) bool {
	for _, svc := range m.services {
		for _, p := range svc.Spec.Ports {
			if svc.Name == name && p.Name == port {
				return true
			}
		}
	}
	return false
}

// With metrics.serviceMonitor.enabled, one ServiceMonitor scrapes /metrics
// of every container: each container's health port is a port of a Service
// that the ServiceMonitor selects, under an endpoint's port name.
func checkServiceMonitor(t *testing.T, m *manifests, vals chartutil.Values) {
	enabled, _ := vals.PathValue("metrics.serviceMonitor.enabled")
	if enabled != true {
		if len(m.serviceMonitors) != 0 {
			t.Errorf("%d ServiceMonitors rendered with metrics.serviceMonitor.enabled off", len(m.serviceMonitors))
		}
		return
	}
	if len(m.serviceMonitors) != 1 {
		t.Fatalf("%d ServiceMonitors rendered, want 1", len(m.serviceMonitors))
	}
	sm := m.serviceMonitors[0]
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetKind() != "ServiceMonitor" {
		t.Fatalf("ServiceMonitor is a %s %s", sm.GetAPIVersion(), sm.GetKind())
	}
	sel, _, _ := unstructuredStringMap(sm.Object, "spec", "selector", "matchLabels")
	endpoints, _ := sm.Object["spec"].(map[string]any)["endpoints"].([]any)
	scraped := map[string]bool{} // endpoint port names
	for _, e := range endpoints {
		e := e.(map[string]any)
		if e["path"] != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %v: path %v, want /metrics", e["port"], e["path"])
		}
		scraped[fmt.Sprint(e["port"])] = true
	}
	eachContainer(m, func(d *appsv1.Deployment, c *corev1.Container) {
		health := c.LivenessProbe.HTTPGet.Port.String()
		for _, svc := range m.services {
			if !selects(sel, svc.Labels) || !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				continue
			}
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.String() == health && scraped[p.Name] {
					return
				}
			}
		}
		t.Errorf("%s/%s: its /metrics (port %s) is in no Service port the ServiceMonitor scrapes", d.Name, c.Name, health)
	})
}

func unstructuredStringMap(obj map[string]any, path ...string) (map[string]string, bool, error) {
	var cur any = obj
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = mm[p]
	}
	mm, ok := cur.(map[string]any)
	if !ok {
		return nil, false, nil
	}
	out := map[string]string{}
	for k, v := range mm {
		out[k] = fmt.Sprint(v)
	}
	return out, true, nil
}
