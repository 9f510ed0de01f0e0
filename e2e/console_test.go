//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/drill"
	"github.com/ordersystem/ordersystem/internal/testservers"
)

// unavailable skips the test, or fails it under CI.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skip(msg)
}

// tools returns the node binary and the browser, or skips.
func tools(t *testing.T) (node, browser string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "no node on PATH (apt-get install nodejs npm)")
	}
	browser = os.Getenv("E2E_CHROMIUM")
	if browser == "" {
		browser = "/usr/bin/chromium"
	}
	if _, err := os.Stat(browser); err != nil {
		unavailable(t, "no browser at %s (apt-get install chromium)", browser)
	}
	if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
		unavailable(t, "playwright-core is not installed: run npm ci in e2e/")
	}
	return node, browser
}

// buildNode builds the ordersystem binary into a temporary directory.
func buildNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ordersystem")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/ordersystem").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startCluster starts n members of a cluster of their own on Redis and
// kills them when the test ends, showing their logs if it failed.
func startCluster(t *testing.T, bin string, n int, args ...string) *drill.Cluster {
	t.Helper()
	c, err := drill.NewCluster(bin, n, args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("--- logs of %s (%s):\n%s", nd.ID, nd.URL(), nd.Logs())
			}
		}
	})
	if err := c.Start(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	return c
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// clusterName returns a cluster name of the test's own and, when the test
// ends (after its nodes are killed), deletes the keys that cluster kept in
// Redis, so that runs leave nothing in a shared server.
func clusterName(t *testing.T, redis, prefix string) string {
	t.Helper()
	name := randomName(prefix)
	t.Cleanup(func() {
		ctx := context.Background()
		c := goredis.NewClient(&goredis.Options{Addr: redis})
		defer c.Close()
		var keys []string
		iter := c.Scan(ctx, 0, name+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("list the keys of cluster %s: %v", name, err)
			return
		}
		for len(keys) > 0 {
			n := min(len(keys), 500)
			if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
				t.Errorf("delete the keys of cluster %s: %v", name, err)
				return
			}
			keys = keys[n:]
		}
	})
	return name
}

// TestConsole drives the console in headless Chromium (console.test.mjs)
// against a three-member cluster and a node that requires a token.
func TestConsole(t *testing.T) {
	node, browser := tools(t)
	redis := testservers.Redis(t)
	bin := buildNode(t)
	backend := []string{"--transport", "redis", "--persistence", "redis", "--redis", redis}
	cluster := startCluster(t, bin, 3, append(backend, "--cluster-name", clusterName(t, redis, "e2e-"))...)
	tok := randomName("tok-")
	guarded := startCluster(t, bin, 1, append(backend, "--cluster-name", clusterName(t, redis, "e2e-token-"), "--api-token", tok)...)

	var urls []string
	for _, n := range cluster.Nodes {
		urls = append(urls, n.URL())
	}
	shots := os.Getenv("E2E_SCREENSHOTS")
	if shots == "" {
		shots = "screenshots"
	}
	shots, _ = filepath.Abs(shots)
	runNode(t, node, []string{"--test", "--test-reporter=spec", "console.test.mjs"}, []string{
		"E2E_URLS=" + strings.Join(urls, ","),
		"E2E_TOKEN_URL=" + guarded.Nodes[0].URL(),
		"E2E_TOKEN=" + tok,
		"E2E_CHROMIUM=" + browser,
		"E2E_SCREENSHOTS=" + shots,
	})
	t.Logf("screenshots in %s", shots)
}

// TestConsoleLatency measures how long an acknowledged create takes to
// show in another member's live view in Chromium (latency.mjs). A figure,
// not a check: it runs only with E2E_LATENCY=<orders> (E2E_RATE=<orders/s>,
// default 20).
func TestConsoleLatency(t *testing.T) {
	orders := os.Getenv("E2E_LATENCY")
	if orders == "" {
		t.Skip("set E2E_LATENCY=<orders> to measure the publish-to-browser latency")
	}
	node, browser := tools(t)
	redis := testservers.Redis(t)
	bin := buildNode(t)
	cluster := startCluster(t, bin, 3, "--transport", "redis", "--persistence", "redis", "--redis", redis, "--cluster-name", clusterName(t, redis, "e2e-lat-"))
	var urls []string
	for _, n := range cluster.Nodes {
		urls = append(urls, n.URL())
	}
	runNode(t, node, []string{"latency.mjs"}, []string{"E2E_URLS=" + strings.Join(urls, ","), "E2E_CHROMIUM=" + browser, "E2E_LATENCY=" + orders})
}

// TestConsoleModules runs the unit tests of the console's pure modules (the
// SSE parser and reader, the fold of events into an order) in Node.
func TestConsoleModules(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "no node on PATH (apt-get install nodejs npm)")
	}
	runNode(t, node, []string{"--experimental-detect-module", "--test", "--test-reporter=spec", "unit.test.mjs"}, nil)
}

// runNode runs node with args, its output in the test log; a non-zero exit
// fails the test.
func runNode(t *testing.T, node string, args, env []string) {
	t.Helper()
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := bufio.NewScanner(pr)
		for s.Scan() {
			t.Log(s.Text())
		}
	}()
	err := cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("node %s: %v", strings.Join(args, " "), err)
	}
}
