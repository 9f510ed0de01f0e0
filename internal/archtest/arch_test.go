package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ordersystem/ordersystem"

// pkg is what `go list -json` says of one package of the module.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// listPackages lists the module's non-test packages with their direct
// imports and transitive dependencies.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages of %s", len(pkgs), module)
	}
	return pkgs
}

// touchSources stats every Go file and go.mod of the module, so that go
// test's cache (which records the files a test opens or stats) reruns this
// test whenever an import may have changed; go list in a subprocess is not
// seen by it.
func touchSources(t *testing.T) {
	t.Helper()
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || d.Name() == "go.mod") {
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk the module: %v", err)
	}
}

// ours returns the module-relative paths of the module packages in paths.
func ours(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == module {
			out = append(out, "")
		} else if rel, ok := strings.CutPrefix(p, module+"/"); ok {
			out = append(out, rel)
		}
	}
	return out
}

func under(p string, roots ...string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// isTool reports whether p is a test helper, drill or load generator: no
// production package may import one.
func isTool(p string) bool {
	if under(p, "internal/drill", "internal/loadgen", "internal/testservers", "internal/archtest", "cmd") {
		return true
	}
	last := p[strings.LastIndex(p, "/")+1:]
	return strings.HasSuffix(last, "test") // journaltest, transporttest, registrytest, clustertest
}

// isWiring reports whether p assembles a node (it may import everything).
func isWiring(p string) bool { return under(p, "node", "cmd") }

func TestDependencyRules(t *testing.T) {
	touchSources(t)
	for _, v := range violations(listPackages(t)) {
		t.Error(v)
	}
}

// violations returns every broken dependency rule in pkgs.
func violations(pkgs map[string]pkg) []string {
	var out []string
	errorf := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	forbiddenDeps := []string{"github.com/asynkron/protoactor-go", "google.golang.org/grpc"}

	for name, p := range pkgs {
		// The HTTP layer and the read side do not know that actors exist.
		if under(name, "http", "readmodel", "codec", "order") {
			for _, d := range p.Deps {
				for _, f := range forbiddenDeps {
					if under(d, f) {
						errorf("%s depends on %s: the HTTP layer, the read model, the codec and the domain core must not link protoactor or grpc", name, d)
					}
				}
			}
		}
		imports := ours(p.Imports)
		// The domain core imports nothing of ours.
		if name == "order" && len(imports) > 0 {
			errorf("the domain core (order) imports %v: it must import nothing of ours", imports)
		}
		// The codec imports no actor code.
		if name == "codec" {
			for _, i := range imports {
				if under(i, "actors", "cluster", "node", "http") {
					errorf("codec imports %s: it must import no actor, cluster or HTTP code", i)
				}
			}
		}
		// No production package imports a tool, or the HTTP package but the wiring.
		if !isTool(name) {
			for _, i := range imports {
				if isTool(i) {
					errorf("production package %s imports the tool %s", name, i)
				}
				if under(i, "http") && !isWiring(name) {
					errorf("%s imports the HTTP package: only the wiring (node, cmd) may", name)
				}
			}
		}
		// Backends import only their contract, the domain core's rules, the
		// shared plumbing of their technology and the shared utilities
		// (backoff, idmap) that link nothing else.
		for contract, backends := range map[string][]string{
			"persistence":      {"persistence/memory", "persistence/redis", "persistence/nats"},
			"transport":        {"transport/memory", "transport/redis", "transport/nats"},
			"cluster/registry": {"cluster/redisreg", "cluster/natsreg", "cluster/peerreg"},
		} {
			if !slices.Contains(backends, name) {
				continue
			}
			for _, i := range imports {
				allowed := i == contract || under(i, contract+"/internal") || under(i, "internal/redisconn", "internal/natsconn", "internal/redact", "internal/backoff", "internal/idmap") || i == "order"
				if !allowed {
					errorf("backend %s imports %s: a backend imports only its contract (%s) and its client library", name, i, contract)
				}
			}
			for _, d := range p.Deps {
				if under(d, "github.com/asynkron/protoactor-go") {
					errorf("backend %s links protoactor (%s)", name, d)
				}
			}
		}
	}
	return out
}

// TestRulesSeeViolations checks the rules against made-up packages, so a
// typo in a rule cannot make the test pass vacuously.
func TestRulesSeeViolations(t *testing.T) {
	for _, p := range []string{"internal/drill", "internal/loadgen", "persistence/journaltest", "transport/transporttest", "cluster/registry/registrytest", "cluster/clustertest", "cmd/drill"} {
		if !isTool(p) {
			t.Errorf("isTool(%q) = false", p)
		}
	}
	for _, p := range []string{"node", "actors", "http", "order", "persistence/redis", "cluster"} {
		if isTool(p) {
			t.Errorf("isTool(%q) = true", p)
		}
	}
	bad := map[string]pkg{
		"http":              {Deps: []string{"google.golang.org/grpc"}},
		"order":             {Imports: []string{module + "/persistence"}},
		"codec":             {Imports: []string{module + "/actors"}},
		"actors":            {Imports: []string{module + "/internal/drill", module + "/http"}},
		"persistence/redis": {Imports: []string{module + "/transport"}, Deps: []string{"github.com/asynkron/protoactor-go/actor"}},
	}
	want := []string{"http depends on google.golang.org/grpc", "the domain core (order) imports", "codec imports actors",
		"production package actors imports the tool internal/drill", "actors imports the HTTP package",
		"backend persistence/redis imports transport", "backend persistence/redis links protoactor"}
	got := strings.Join(violations(bad), "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("violations of a bad graph miss %q; got:\n%s", w, got)
		}
	}
	if got := ours([]string{"fmt", module + "/order", module}); !slices.Equal(got, []string{"order", ""}) {
		t.Errorf("ours = %q", got)
	}
}
