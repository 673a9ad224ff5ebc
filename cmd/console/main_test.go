package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventmesh/eventmesh/cmd/internal/harness"
)

// bins are the binaries the tests run, built once by TestMain.
var bins map[string]string

func TestMain(m *testing.M) {
	release := harness.HoldDefaultAddrs()
	dir, err := os.MkdirTemp("", "eventmesh-console-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bins, err = harness.Build(filepath.Join(dir, "bin"), "eventmesh", "console"); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	release()
	os.RemoveAll(dir)
	os.Exit(code)
}
