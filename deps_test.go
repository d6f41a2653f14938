package nexodus_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/nexodus-sdk/nexodus"

// TestImportRules keeps the package graph docs/ARCHITECTURE.md draws. Calls go one way: the
// facade (the root package) drives internal/engine, which drives mesh, natt and client; the
// data-plane packages, the client and the coordinator never import each other or anything
// above them; key imports nothing of the project's.
func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	// allowed lists, per package, the only project packages its non-test code may import
	// directly ("" is the root package).
	allowed := map[string][]string{
		"":                     {"internal/engine"},
		"internal/engine":      {"api", "client", "key", "mesh", "natt", "internal/privatefile"},
		"mesh":                 {"key", "internal/sockbuf"},
		"natt":                 {"key", "internal/sockbuf"},
		"relay":                {"internal/turncred", "internal/sockbuf", "internal/ratelimit"},
		"internal/ratelimit":   {},
		"internal/privatefile": {},
		"client":               {"api", "internal/sealbox"},
		"api":                  {},
		"key":                  {},
		// The Prometheus collector over a Node stands beside the root package, so that
		// embedding a Node does not pull in client_golang (checked below).
		"nexodusprom": {""},
	}
	// The storage engines (SQLite, and PostgreSQL through github.com/jackc/pgx/v5) stand on the
	// store interface and the change queue they share; the suite and pgtest are for tests.
	for pkg, deps := range map[string][]string{
		"coordinator/store":                     {},
		"coordinator/store/internal/watch":      {"coordinator/store"},
		"coordinator/store/internal/migrations": {},
		"coordinator/store/sqlite":              {"coordinator/store", "coordinator/store/internal/watch", "coordinator/store/internal/migrations"},
		"coordinator/store/postgres":            {"coordinator/store", "coordinator/store/internal/watch", "coordinator/store/internal/migrations"},
		"coordinator/store/postgres/pgtest":     {},
		"coordinator/store/storetest":           {"coordinator/store"},
	} {
		allowed[pkg] = deps
	}
	// The console's test kits: a real OpenID provider, and a coordinator signing people in
	// with it. Only tests import them (checked below).
	allowed["internal/oidctest"] = []string{}
	allowed["internal/consoletest"] = []string{"coordinator", "coordinator/store/sqlite", "internal/oidctest"}
	// Where the coordinator and the test kit stand: nothing of the data plane in the
	// coordinator; the kit above everything, and imported by no library package.
	banned := map[string][]string{
		"coordinator/...": {"", "internal/engine", "mesh", "natt", "client", "relay", "nexodustest"},
	}
	for pkg, ok := range allowed {
		for from, deps := range projectImports(t, "./"+pkg) {
			for _, dep := range deps {
				require.Contains(t, ok, dep, "%s imports %s, which the package graph does not allow", displayName(from), displayName(dep))
			}
		}
	}
	for pattern, bad := range banned {
		for from, deps := range projectImports(t, "./"+pattern) {
			for _, dep := range deps {
				require.NotContains(t, bad, dep, "%s imports %s, which the package graph forbids", displayName(from), displayName(dep))
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "go list -deps: %s", out)
	require.NotContains(t, string(out), "github.com/prometheus/", "the root package pulls in Prometheus")
	for from, deps := range projectImports(t, "./...") {
		if from != "nexodustest" && !strings.HasPrefix(from, "examples/") && !strings.HasPrefix(from, "internal/labtest") {
			require.NotContains(t, deps, "nexodustest", "%s imports the test kit", displayName(from))
		}
		if from != "internal/consoletest" {
			require.NotContains(t, deps, "internal/oidctest", "%s imports the OpenID provider of tests", displayName(from))
		}
		require.NotContains(t, deps, "internal/consoletest", "%s imports the console's test kit", displayName(from))
	}
}

// projectImports lists, for each package matching pattern, the project packages its non-test
// files import directly, as paths below the module ("" for the root).
func projectImports(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, pattern).CombinedOutput()
	require.NoError(t, err, "go list %s: %s", pattern, out)
	rel := func(p string) (string, bool) {
		if p == module {
			return "", true
		}
		if r, ok := strings.CutPrefix(p, module+"/"); ok {
			return r, true
		}
		return "", false
	}
	res := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from, _ := rel(fields[0])
		res[from] = []string{}
		for _, imp := range fields[1:] {
			if r, ok := rel(imp); ok {
				res[from] = append(res[from], r)
			}
		}
	}
	return res
}

func displayName(p string) string {
	if p == "" {
		return "the root package"
	}
	return p
}
