package helm

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "mesh"
	namespace   = "enmeshed"
)

// The stand-in for the official NATS chart, which cannot be fetched here: a
// subchart of the same name whose StatefulSet and Service are what the
// chart's values ask of the real one (its config.cluster.* and
// config.jetstream.* keys, its nats.fullname), so the test can check the
// values handed to it.
var standIn = map[string]string{
	"Chart.yaml": `apiVersion: v2
name: nats
version: 2.0.0
appVersion: 2.15.2
`,
	"values.yaml": `config:
  cluster:
    enabled: false
    replicas: 3
  jetstream:
    enabled: false
    fileStore:
      enabled: true
      pvc:
        size: 10Gi
`,
	"templates/_helpers.tpl": `{{- define "nats.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}
`,
	"templates/nats.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ include "nats.fullname" . }}
  annotations:
    stand-in/jetstream: {{ .Values.config.jetstream.enabled | quote }}
    stand-in/file-store: {{ .Values.config.jetstream.fileStore.enabled | quote }}
spec:
  replicas: {{ if .Values.config.cluster.enabled }}{{ .Values.config.cluster.replicas }}{{ else }}1{{ end }}
  serviceName: {{ include "nats.fullname" . }}-headless
  selector:
    matchLabels: {app: nats}
  template:
    metadata:
      labels: {app: nats}
    spec:
      containers:
        - name: nats
          image: nats:2.15.2
          ports:
            - {name: nats, containerPort: 4222}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "nats.fullname" . }}
spec:
  selector: {app: nats}
  ports:
    - {name: nats, port: 4222, targetPort: nats}
`,
}

// chartCopy copies the chart into a temporary directory and adds the
// stand-in NATS chart under charts/, as `helm dependency build` would.
func chartCopy(t *testing.T) string {
	t.Helper()
	src := filepath.Join("eventmesh")
	dst := filepath.Join(t.TempDir(), "eventmesh")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel == "charts" {
				return fs.SkipDir // a fetched dependency: the stand-in replaces it
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the chart: %v", err)
	}
	for name, body := range standIn {
		p := filepath.Join(dst, "charts", "nats", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// readValues reads a values file of testdata/ ("" for none: the defaults).
func readValues(t *testing.T, file string) chartutil.Values {
	t.Helper()
	if file == "" {
		return chartutil.Values{}
	}
	v, err := chartutil.ReadValuesFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

func loadChart(t *testing.T, dir string) *chart.Chart {
	t.Helper()
	c, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	return c
}

// render renders the chart as `helm template` does.
func render(t *testing.T, dir string, vals chartutil.Values) (*manifests, error) {
	t.Helper()
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.ReleaseName = releaseName
	inst.Namespace = namespace
	rel, err := inst.Run(loadChart(t, dir), vals)
	if err != nil {
		return nil, err
	}
	m, err := decode(releaseutil.SplitManifests(rel.Manifest))
	if err != nil {
		return nil, err
	}
	m.notes = rel.Info.Notes
	return m, nil
}

// manifests are the rendered objects, each decoded strictly into its API type.
type manifests struct {
	deployments     []appsv1.Deployment
	statefulSets    []appsv1.StatefulSet
	services        []corev1.Service
	secrets         []corev1.Secret
	pvcs            []corev1.PersistentVolumeClaim
	pdbs            []policyv1.PodDisruptionBudget
	ingresses       []networkingv1.Ingress
	serviceMonitors []unstructured.Unstructured
	notes           string
}

// decode decodes every manifest strictly (an unknown or misspelt field is an
// error) into the Kubernetes API type of its kind.
func decode(docs map[string]string) (*manifests, error) {
	m := &manifests{}
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		doc := docs[k]
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", k, err, doc)
		}
		var err error
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			m.deployments, err = decodeInto(doc, m.deployments)
		case "apps/v1 StatefulSet":
			m.statefulSets, err = decodeInto(doc, m.statefulSets)
		case "v1 Service":
			m.services, err = decodeInto(doc, m.services)
		case "v1 Secret":
			m.secrets, err = decodeInto(doc, m.secrets)
		case "v1 PersistentVolumeClaim":
			m.pvcs, err = decodeInto(doc, m.pvcs)
		case "policy/v1 PodDisruptionBudget":
			m.pdbs, err = decodeInto(doc, m.pdbs)
		case "networking.k8s.io/v1 Ingress":
			m.ingresses, err = decodeInto(doc, m.ingresses)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			var u unstructured.Unstructured
			if err = yaml.UnmarshalStrict([]byte(doc), &u.Object); err == nil {
				m.serviceMonitors = append(m.serviceMonitors, u)
			}
		default:
			err = fmt.Errorf("a %s %s, which the test does not know", head.APIVersion, head.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", k, err, doc)
		}
	}
	return m, nil
}

func decodeInto[T any](doc string, list []T) ([]T, error) {
	var v T
	if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
		return list, err
	}
	return append(list, v), nil
}

// named returns the object of a list by its name, or nil.
func named[T any, P interface {
	*T
	GetName() string
}](list []T, name string) *T {
	for i := range list {
		if P(&list[i]).GetName() == name {
			return &list[i]
		}
	}
	return nil
}

func (m *manifests) deployment(name string) *appsv1.Deployment { return named(m.deployments, name) }

func (m *manifests) secret(name string) *corev1.Secret { return named(m.secrets, name) }

// container returns the container of a Deployment by name.
func container(d *appsv1.Deployment, name string) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

// envOf returns a container's variable: its value, or its Secret reference.
func envOf(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// binaryOf is the binary a container runs: the image's /<name> entrypoint.
func binaryOf(c *corev1.Container) string {
	if len(c.Command) == 0 {
		return ""
	}
	return strings.TrimPrefix(c.Command[0], "/")
}
