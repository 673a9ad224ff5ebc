package helm

import (
	"fmt"
	"os"
	"testing"
)

// helps is every command's --help, read once by TestMain.
var helps map[string]help

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventmesh-helm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helps, err = buildBinaries(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helm chart tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
