// Package helm holds the tests of the Helm chart in eventmesh/: it lints the
// chart and renders it for the values files in testdata/ with Helm's Go SDK,
// decodes every manifest into the Kubernetes API types, and checks the
// result against the binaries the containers run.
//
// It is a module of its own, so the main module takes no Kubernetes
// dependencies; .ci/run runs it (cd deploy/helm && go test ./...).
package helm
