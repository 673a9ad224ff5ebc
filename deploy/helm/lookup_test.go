package helm

import (
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"
)

// clusterWith answers the chart's lookup calls from a fake cluster holding
// the given Secrets, as the API server does during `helm upgrade`.
type clusterWith struct{ client dynamic.Interface }

func (c clusterWith) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gvk := schema.FromAPIVersionAndKind(apiVersion, kind)
	return c.client.Resource(gvk.GroupVersion().WithResource("secrets")), true, nil
}

// renderSecret renders the chart's generated Secret against a cluster that
// holds the given Secrets.
func renderSecret(t *testing.T, dir string, existing ...runtime.Object) corev1.Secret {
	t.Helper()
	c := loadChart(t, dir)
	vals := chartutil.Values{}
	if err := chartutil.ProcessDependenciesWithMerge(c, vals); err != nil {
		t.Fatal(err)
	}
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 2, IsUpgrade: true}
	rv, err := chartutil.ToRenderValues(c, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	out, err := engine.RenderWithClientProvider(c, rv, clusterWith{dynamicfake.NewSimpleDynamicClient(scheme, existing...)})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var s corev1.Secret
	if err := yaml.UnmarshalStrict([]byte(out["eventmesh/templates/secret.yaml"]), &s); err != nil {
		t.Fatalf("the generated Secret: %v", err)
	}
	return s
}

// A generated key is kept across upgrades: the chart reads it back with
// lookup instead of generating a new one (which would lock the Connector
// out of ingest after every upgrade); a key the release does not hold yet is
// generated.
func TestGeneratedSecretKeptAcrossUpgrades(t *testing.T) {
	dir := chartCopy(t)
	fresh1, fresh2 := renderSecret(t, dir), renderSecret(t, dir)
	if string(fresh1.Data["INGEST_API_KEY"]) == string(fresh2.Data["INGEST_API_KEY"]) {
		t.Fatal("two installs generated the same INGEST_API_KEY")
	}
	kept := []byte("the-key-the-connector-was-given")
	existing := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: generated, Namespace: namespace},
		Data:       map[string][]byte{"INGEST_API_KEY": kept},
	}
	s := renderSecret(t, dir, existing)
	if got := string(s.Data["INGEST_API_KEY"]); got != string(kept) {
		t.Errorf("upgrade: INGEST_API_KEY %q, want the release's %q", got, kept)
	}
	if got := s.Data["ARCHIVE_API_KEY"]; len(got) < 32 {
		t.Errorf("upgrade: ARCHIVE_API_KEY not generated: %q", got)
	}
}
