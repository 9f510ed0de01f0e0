package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	goredis "github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/ordersystem/ordersystem/internal/testservers"
)

// The shipped deployment examples (docker-compose.yml, configs/k8s,
// Dockerfile) are safe by default, and what they hand the node loads.

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate expands ${VAR:-default} as docker-compose does, from vars.
func interpolate(s string, vars map[string]string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		if v, ok := vars[g[1]]; ok && v != "" {
			return v
		}
		return g[3]
	})
}

type composeFile struct {
	Services map[string]struct {
		Command     []string          `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		ReadOnly    bool              `yaml:"read_only"`
		CapDrop     []string          `yaml:"cap_drop"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// environ returns a service's environment as KEY=VALUE, interpolated.
func environ(env map[string]string, vars map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+interpolate(v, vars))
	}
	slices.Sort(out)
	return out
}

// TestComposeExample: every published port is bound to loopback, Redis and
// NATS require the password the nodes use, and each node's environment loads
// as a node configuration that carries those credentials.
func TestComposeExample(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"redis", "nats", "node1", "node2", "node3"} {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %s", name)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q on every interface; bind it to 127.0.0.1", name, p)
			}
		}
	}
	redisCmd := strings.Join(c.Services["redis"].Command, " ")
	if !strings.Contains(redisCmd, "--requirepass ${REDIS_PASSWORD:-") {
		t.Errorf("redis runs without --requirepass ${REDIS_PASSWORD}: %s", redisCmd)
	}
	natsCmd := strings.Join(c.Services["nats"].Command, " ")
	if !strings.Contains(natsCmd, "--user ordersystem --pass ${NATS_PASSWORD:-") {
		t.Errorf("nats runs without --user/--pass ${NATS_PASSWORD}: %s", natsCmd)
	}

	for _, vars := range []map[string]string{
		nil, // the defaults
		{"REDIS_PASSWORD": "r3dis-pw", "NATS_PASSWORD": "n4ts-pw", "ORDERSYSTEM_API_TOKEN": "tok"},
	} {
		redisPW := interpolate("${REDIS_PASSWORD:-change-me}", vars)
		natsPW := interpolate("${NATS_PASSWORD:-change-me}", vars)
		if got := interpolate(redisCmd, vars); !strings.Contains(got, "--requirepass "+redisPW) {
			t.Errorf("redis command %q, want the password %q", got, redisPW)
		}
		for _, name := range []string{"node1", "node2", "node3"} {
			s := c.Services[name]
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("%s: read_only=%v cap_drop=%v, want a read-only node without capabilities", name, s.ReadOnly, s.CapDrop)
			}
			cfg, err := loadConfig(nil, environ(s.Environment, vars), &bytes.Buffer{})
			if err != nil {
				t.Fatalf("%s's environment does not load: %v", name, err)
			}
			if want := "redis://:" + redisPW + "@redis:6379"; cfg.Redis != want {
				t.Errorf("%s: --redis=%q, want %q", name, cfg.Redis, want)
			}
			if want := "nats://ordersystem:" + natsPW + "@nats:4222"; cfg.NATS != want {
				t.Errorf("%s: --nats=%q, want %q", name, cfg.NATS, want)
			}
			if cfg.NodeID != name || !cfg.Cluster || cfg.AdvertiseHost != name {
				t.Errorf("%s: node-id=%s cluster=%v advertise-host=%s", name, cfg.NodeID, cfg.Cluster, cfg.AdvertiseHost)
			}
			if cfg.APIToken != vars["ORDERSYSTEM_API_TOKEN"] {
				t.Errorf("%s: api token %q, want %q", name, cfg.APIToken, vars["ORDERSYSTEM_API_TOKEN"])
			}
		}
	}
}

// k8sDoc is the part of a Kubernetes object the test looks at.
type k8sDoc struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
					RunAsUser      *int  `yaml:"runAsUser"`
					RunAsGroup     *int  `yaml:"runAsGroup"`
					SeccompProfile struct {
						Type string `yaml:"type"`
					} `yaml:"seccompProfile"`
				} `yaml:"securityContext"`
				Containers []struct {
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					SecurityContext struct {
						AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
						ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
						Capabilities             struct {
							Drop []string `yaml:"drop"`
						} `yaml:"capabilities"`
					} `yaml:"securityContext"`
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom *struct {
							SecretKeyRef *struct {
								Name     string `yaml:"name"`
								Key      string `yaml:"key"`
								Optional *bool  `yaml:"optional"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// NetworkPolicy
		PodSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
		PolicyTypes []string `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				PodSelector *struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"podSelector"`
			} `yaml:"from"`
			Ports []struct {
				Protocol string `yaml:"protocol"`
				Port     int    `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

func isTrue(b *bool) bool { return b != nil && *b }

func boolText(b *bool) string {
	if b == nil {
		return "unset"
	}
	return strconv.FormatBool(*b)
}

func intText(i *int) string {
	if i == nil {
		return "unset"
	}
	return strconv.Itoa(*i)
}

// dockerUser returns the USER of the Dockerfile's final stage.
func dockerUser(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && strings.EqualFold(f[0], "FROM"):
			user = "" // a new stage
		case len(f) == 2 && strings.EqualFold(f[0], "USER"):
			user = f[1]
		}
	}
	return user
}

// TestKubernetesExample: the StatefulSet requires the token secret, runs
// unprivileged as the image's numeric user, and the NetworkPolicy admits the
// node-to-node port only from the StatefulSet's own pods.
func TestKubernetesExample(t *testing.T) {
	b, err := os.ReadFile("../../configs/k8s/ordersystem.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]k8sDoc{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d k8sDoc
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("configs/k8s/ordersystem.yaml: %v", err)
		}
		docs[d.Kind] = d
	}
	sts, ok := docs["StatefulSet"]
	if !ok || len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("no StatefulSet with one container in %v", slices.Collect(maps.Keys(docs)))
	}
	pod := sts.Spec.Template.Spec
	ctr := pod.Containers[0]

	uid, gid, _ := strings.Cut(dockerUser(t), ":")
	if _, err := strconv.Atoi(uid); err != nil || uid == "0" {
		t.Fatalf("Dockerfile USER %q: want a numeric non-root uid", uid)
	}
	psc := pod.SecurityContext
	if !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || strconv.Itoa(*psc.RunAsUser) != uid ||
		psc.RunAsGroup == nil || (gid != "" && strconv.Itoa(*psc.RunAsGroup) != gid) || psc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext: runAsNonRoot %s, runAsUser %s, runAsGroup %s, seccomp %q; want true, %s, %s (the image's USER), RuntimeDefault",
			boolText(psc.RunAsNonRoot), intText(psc.RunAsUser), intText(psc.RunAsGroup), psc.SeccompProfile.Type, uid, gid)
	}
	csc := ctr.SecurityContext
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || !isTrue(csc.ReadOnlyRootFilesystem) || !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext: allowPrivilegeEscalation %s, readOnlyRootFilesystem %s, drop %v; want false, true, [ALL]",
			boolText(csc.AllowPrivilegeEscalation), boolText(csc.ReadOnlyRootFilesystem), csc.Capabilities.Drop)
	}

	environ := []string{}
	token := false
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			environ = append(environ, e.Name+"="+e.Value)
			continue
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			if isTrue(ref.Optional) {
				t.Errorf("%s comes from an optional secret: the pod would start without it", e.Name)
			}
			token = token || e.Name == "ORDERSYSTEM_API_TOKEN"
		}
	}
	if !token {
		t.Error("ORDERSYSTEM_API_TOKEN does not come from a secret")
	}
	// What the pod sets, with stand-ins for what Kubernetes fills in.
	environ = append(environ, "ORDERSYSTEM_NODE_ID=ordersystem-0", "ORDERSYSTEM_ADVERTISE_HOST=10.0.0.7",
		"ORDERSYSTEM_API_TOKEN=t", "ORDERSYSTEM_REDIS=redis://:pw@redis:6379")
	cfg, err := loadConfig(nil, environ, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("the pod's environment does not load: %v", err)
	}
	ports := map[string]int{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	remote := cfg.RemotePort
	if remote == -1 {
		remote = cfg.Port + 1000 // the default
	}
	if ports["http"] != cfg.Port || ports["remote"] != remote || remote == 0 {
		t.Fatalf("container ports %v, node listens on http %d and remote %d", ports, cfg.Port, remote)
	}

	np, ok := docs["NetworkPolicy"]
	if !ok {
		t.Fatal("no NetworkPolicy")
	}
	labels := sts.Spec.Template.Metadata.Labels
	if !mapsEqual(np.Spec.PodSelector.MatchLabels, sts.Spec.Selector.MatchLabels) || !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Fatalf("NetworkPolicy selects %v (types %v), want the StatefulSet's pods %v", np.Spec.PodSelector.MatchLabels, np.Spec.PolicyTypes, sts.Spec.Selector.MatchLabels)
	}
	remoteOK, httpOK := false, false
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			switch p.Port {
			case ports["remote"]:
				// Only from the StatefulSet's own pods: every peer has a
				// pod selector that the pods' labels satisfy and that no
				// other pod can satisfy without them.
				for _, f := range rule.From {
					if f.PodSelector == nil || len(f.PodSelector.MatchLabels) == 0 || !subset(f.PodSelector.MatchLabels, labels) {
						t.Errorf("node-to-node port %d admitted from a peer that is not a pod labelled %v", p.Port, sts.Spec.Selector.MatchLabels)
					}
				}
				remoteOK = len(rule.From) > 0
			case ports["http"]:
				httpOK = true
			default:
				t.Errorf("NetworkPolicy admits port %d, which the node does not listen on", p.Port)
			}
		}
	}
	if !remoteOK || !httpOK {
		t.Errorf("NetworkPolicy admits remote=%v http=%v, want both", remoteOK, httpOK)
	}
}

func mapsEqual(a, b map[string]string) bool { return len(a) == len(b) && subset(a, b) }

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startNATSWithPassword starts an embedded JetStream server that requires
// user/password.
func startNATSWithPassword(t *testing.T, user, pass string) string {
	t.Helper()
	port := testservers.FreePort(t)
	srv, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"),
		Username: user, Password: pass, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded nats-server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return "127.0.0.1:" + strconv.Itoa(port)
}

// TestBackendPasswords runs nodes configured through the environment the
// way docker-compose.yml does (redis://:PASSWORD@host:port and
// nats://user:PASSWORD@host:port) against a Redis that requires a password
// and a NATS that requires a user: they start as cluster members and serve
// orders; with a wrong password they stop at start with an error that does
// not show it.
func TestBackendPasswords(t *testing.T) {
	const pw = "s3cret-Pw-42"
	rs := testservers.StartRedis(t)
	admin := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.ConfigSet(ctx, "requirepass", pw).Err(); err != nil {
		t.Fatalf("config set requirepass: %v", err)
	}
	_ = admin.Close()
	natsAddr := startNATSWithPassword(t, "ordersystem", pw)

	c := readCompose(t)
	env := c.Services["node1"].Environment
	vars := map[string]string{"REDIS_PASSWORD": pw, "NATS_PASSWORD": pw}
	redisURL := strings.Replace(interpolate(env["ORDERSYSTEM_REDIS"], vars), "@redis:6379", "@"+rs.Addr(), 1)
	natsURL := strings.Replace(interpolate(env["ORDERSYSTEM_NATS"], vars), "@nats:4222", "@"+natsAddr, 1)
	if !strings.Contains(redisURL, pw+"@127.0.0.1:") || !strings.Contains(natsURL, "ordersystem:"+pw+"@127.0.0.1:") {
		t.Fatalf("compose URLs did not map onto the test servers: %s %s", redisURL, natsURL)
	}
	t.Setenv("ORDERSYSTEM_REDIS", redisURL)
	t.Setenv("ORDERSYSTEM_NATS", natsURL)
	t.Setenv("ORDERSYSTEM_CLUSTER", "true")
	t.Setenv("ORDERSYSTEM_CLUSTER_NAME", "pwtest"+strconv.Itoa(os.Getpid()))

	for _, backend := range []string{"redis", "nats"} {
		t.Run(backend, func(t *testing.T) {
			t.Setenv("ORDERSYSTEM_TRANSPORT", backend)
			t.Setenv("ORDERSYSTEM_PERSISTENCE", backend)
			p := startProc(t, "--node-id", "pw-"+backend, "--remote-port", "0")
			status, body, err := p.post("/orders", order1)
			if err != nil || status != http.StatusCreated {
				t.Fatalf("create through %s with a password: %d %s %v", backend, status, body, err)
			}
			if status, _ := p.get("/"); status != 200 {
				t.Fatalf("GET /: %d", status)
			}
			if strings.Contains(p.logText(), pw) {
				t.Errorf("the node's log shows the password")
			}
		})
	}

	for _, c := range []struct{ name, redis, nats, backend string }{
		{"redis", strings.Replace(redisURL, pw, "wrong-"+pw, 1), natsURL, "redis"},
		{"nats", redisURL, strings.Replace(natsURL, pw, "wrong-"+pw, 1), "nats"},
	} {
		cmd := exec.Command(binary(t), "--port", "0", "--node-id", "pw-wrong", "--remote-port", "0")
		cmd.Env = append(os.Environ(), "ORDERSYSTEM_REDIS="+c.redis, "ORDERSYSTEM_NATS="+c.nats,
			"ORDERSYSTEM_TRANSPORT="+c.backend, "ORDERSYSTEM_PERSISTENCE="+c.backend)
		out, err := runWithin(cmd, 30*time.Second)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%s with a wrong password: exit %v, want a non-zero exit\n%s", c.name, err, out)
		}
		if strings.Contains(out, pw) {
			t.Errorf("%s with a wrong password: the output shows it:\n%s", c.name, out)
		}
		t.Logf("%s with a wrong password: %s", c.name, lastLine(out))
	}
}

func runWithin(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("still running after %v", d)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// The Kubernetes example works for a locally built image and drains
// cleanly: a pull policy that uses the local image, a headless governing
// Service, a preStop pause and a drain delay within the grace period, probe
// timeouts, a PodDisruptionBudget.
func TestKubernetesExampleDeploys(t *testing.T) {
	b, err := os.ReadFile("../../configs/k8s/ordersystem.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	get := func(v any, path ...any) any {
		for _, p := range path {
			switch k := p.(type) {
			case string:
				m, _ := v.(map[string]any)
				v = m[k]
			case int:
				l, _ := v.([]any)
				if k >= len(l) {
					return nil
				}
				v = l[k]
			}
		}
		return v
	}
	byKind := map[string][]map[string]any{}
	for _, d := range docs {
		byKind[fmt.Sprint(d["kind"])] = append(byKind[fmt.Sprint(d["kind"])], d)
	}
	sts := byKind["StatefulSet"][0]
	ctr := get(sts, "spec", "template", "spec", "containers", 0)
	if img := fmt.Sprint(get(ctr, "image")); strings.HasSuffix(img, ":latest") || !strings.Contains(img, ":") || get(ctr, "imagePullPolicy") != "IfNotPresent" {
		t.Errorf("image %s with pull policy %v: want a pinned tag and IfNotPresent", img, get(ctr, "imagePullPolicy"))
	}
	headless := false
	for _, s := range byKind["Service"] {
		if get(s, "metadata", "name") == get(sts, "spec", "serviceName") && get(s, "spec", "clusterIP") == "None" {
			headless = true
		}
	}
	if !headless {
		t.Errorf("serviceName %v is not a headless Service of the example", get(sts, "spec", "serviceName"))
	}
	pre, _ := get(ctr, "lifecycle", "preStop", "sleep", "seconds").(int)
	grace, _ := get(sts, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	env := map[string]string{}
	for _, e := range get(ctr, "env").([]any) {
		if v, ok := get(e, "value").(string); ok {
			env[fmt.Sprint(get(e, "name"))] = v
		}
	}
	drain, err1 := time.ParseDuration(env["ORDERSYSTEM_DRAIN_DELAY"])
	stop, err2 := time.ParseDuration(env["ORDERSYSTEM_SHUTDOWN_TIMEOUT"])
	if pre <= 0 || err1 != nil || err2 != nil || drain <= 0 || time.Duration(pre)*time.Second+drain+stop >= time.Duration(grace)*time.Second {
		t.Errorf("preStop %d s + drain %v + shutdown %v must fit the grace period %d s", pre, drain, stop, grace)
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if to, _ := get(ctr, probe, "timeoutSeconds").(int); to < 2 {
			t.Errorf("%s timeoutSeconds %v: want at least 2 (the default 1 s races the node's own checks)", probe, get(ctr, probe, "timeoutSeconds"))
		}
	}
	if len(byKind["PodDisruptionBudget"]) != 1 {
		t.Error("no PodDisruptionBudget")
	}
}

// The Compose nodes wait for healthy backends, and the image carries CA
// certificates for TLS backends.
func TestComposeWaitsForBackends(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		XNode struct {
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"x-node"`
		Services map[string]struct {
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"redis", "nats"} {
		if c.XNode.DependsOn[s].Condition != "service_healthy" || len(c.Services[s].Healthcheck.Test) == 0 {
			t.Errorf("%s: nodes depend on it with %q, its healthcheck %v; want service_healthy and a check", s, c.XNode.DependsOn[s].Condition, c.Services[s].Healthcheck.Test)
		}
	}
	d, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(d), "/etc/ssl/certs/ca-certificates.crt") {
		t.Error("the image has no CA certificates: rediss:// and tls:// cannot verify a server")
	}
}
