package nexodus_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nexodus-sdk/nexodus"

// TestImportRules keeps the package graph DESIGN.md lays out: the data-plane packages and the
// client never import each other or the facade, and the coordinator never imports the data plane.
func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	forbidden := map[string][]string{
		"mesh":        {"client", "natt", "relay", "coordinator", ""},
		"natt":        {"client", "mesh", "relay", "coordinator", ""},
		"relay":       {"client", "mesh", "natt", "coordinator", ""},
		"client":      {"mesh", "natt", "relay", "coordinator", ""},
		"api":         {"client", "mesh", "natt", "relay", "coordinator", ""},
		"coordinator": {"client", "mesh", "natt", "relay", ""},
	}
	for pkg, banned := range forbidden {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg+"/...").CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "matched no packages") {
				continue
			}
			t.Fatalf("go list -deps ./%s/...: %v\n%s", pkg, err, out)
		}
		deps := map[string]bool{}
		for _, line := range strings.Fields(string(out)) {
			deps[line] = true
		}
		for _, b := range banned {
			target := module
			if b != "" {
				target += "/" + b
			}
			for dep := range deps {
				if dep == target || (b != "" && strings.HasPrefix(dep, target+"/")) {
					t.Errorf("%s depends on %s, which DESIGN.md forbids", pkg, dep)
				}
			}
		}
	}
}
