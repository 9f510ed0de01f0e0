package drill

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
)

// Helpers of the membership drills (backend-restart, slow-backend,
// clock-step): a backend server that can be stopped and started again on
// the same port and data, and what the drills read from the members.

// BackendServer is one private Redis or NATS server of a drill, on a free
// loopback port with its data in a directory, that can be killed (SIGKILL)
// or stopped (SIGTERM) and started again on the same port with the same
// data. It is killed by the kernel if the drill dies.
type BackendServer struct {
	Kind string // redis or nats
	Addr string // host:port of its clients
	srv  *server
}

// StartRedisServer starts a redis-server under dir with appendonly yes and
// appendfsync always (a write is on disk before Redis acknowledges it, so
// it survives a SIGKILL of the server).
func StartRedisServer(dir string) (*BackendServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &BackendServer{Kind: "redis", Addr: "127.0.0.1:" + strconv.Itoa(port), srv: &server{
		name: "redis-" + strconv.Itoa(port), bin: "redis-server", log: filepath.Join(dir, "redis.log"),
		args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", ""},
	}}
	return b, b.Start()
}

// StartNATSServer starts one nats-server of bin under dir with JetStream
// file storage in dir and sync_interval: always (every write fsynced before
// it is acknowledged).
func StartNATSServer(bin, dir string) (*BackendServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	store := filepath.Join(dir, "jetstream")
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 2GB\n  sync_interval: always\n}\n", port, store)
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	b := &BackendServer{Kind: "nats", Addr: "127.0.0.1:" + strconv.Itoa(port), srv: &server{
		name: "nats-" + strconv.Itoa(port), bin: bin, log: filepath.Join(dir, "nats.log"), args: []string{"-c", path},
	}}
	return b, b.Start()
}

// MemberArgs returns the members' backend flags for a server at addr
// (this server's address, or a proxy's in front of it).
func (b *BackendServer) MemberArgs(addr string) []string {
	if b.Kind == "nats" {
		return []string{"--persistence", "nats", "--transport", "nats", "--nats", "nats://" + addr}
	}
	return []string{"--persistence", "redis", "--transport", "redis", "--redis", addr}
}

// Start starts the server (again) and waits until it accepts connections.
func (b *BackendServer) Start() error {
	if err := b.srv.start(); err != nil {
		return err
	}
	if err := waitDial(b.Addr, 30*time.Second); err != nil {
		b.srv.kill()
		return fmt.Errorf("%s: %w", b.srv.name, err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the server to die.
func (b *BackendServer) Kill() { b.srv.kill() }

// Term sends SIGTERM and waits (30 s at most, then SIGKILL) for the server
// to exit.
func (b *BackendServer) Term() {
	cmd := b.srv.cmd
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	b.srv.cmd = nil
}

// Close kills the server; it is idempotent.
func (b *BackendServer) Close() { b.srv.kill() }

// metricValue reads one unlabelled sample of base's /metrics.
func metricValue(hc *http.Client, base, name string) (float64, error) {
	res, err := hc.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s/metrics: %s", base, res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/metrics has no %s", base, name)
}

// fences returns each node's cluster_fences_total (a count of its current
// process: a node started again counts from 0).
func (r *run) fences() (map[string]int, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	out := map[string]int{}
	for _, n := range r.cluster.Nodes {
		v, err := metricValue(hc, n.URL(), "cluster_fences_total")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.ID, err)
		}
		out[n.ID] = int(v)
	}
	return out, nil
}

// sumDiff returns how many fences b counts over a, in all.
func sumDiff(a, b map[string]int) int {
	n := 0
	for k, v := range b {
		n += v - a[k]
	}
	return n
}

// fenceReasons returns the fence log lines (reason="...") of every node's
// current process after the first skip[node] of each node, by node id.
func (r *run) fenceReasons(skip map[string]int) map[string][]string {
	out := map[string][]string{}
	for _, n := range r.cluster.Nodes {
		k := 0
		for _, line := range strings.Split(n.Logs(), "\n") {
			if !strings.Contains(line, "membership lease lost") {
				continue
			}
			if k++; k <= skip[n.ID] {
				continue
			}
			reason := line
			if i := strings.Index(line, "reason="); i >= 0 {
				reason = line[i+len("reason="):]
			}
			out[n.ID] = append(out[n.ID], reason)
		}
	}
	return out
}

// fenceCounts counts the fence log lines of each node's current process.
func (r *run) fenceCounts() map[string]int {
	out := map[string]int{}
	for _, n := range r.cluster.Nodes {
		out[n.ID] = strings.Count(n.Logs(), "membership lease lost")
	}
	return out
}

// WriteFigures are the writes invoked in a window of a drill.
type WriteFigures struct {
	Acked, Failed, Refused int           // 2xx; 5xx or no answer; 4xx
	P50, P99, Max          time.Duration // of the acknowledged ones
}

func (w WriteFigures) String() string {
	return fmt.Sprintf("%d writes acknowledged (p50 %s, p99 %s, max %s), %d failed", w.Acked,
		w.P50.Round(time.Millisecond), w.P99.Round(time.Millisecond), w.Max.Round(time.Millisecond), w.Failed)
}

// writesIn sums up the writes invoked in [from, to) on the recorder's clock.
func writesIn(ops []porcupine.Operation, from, to int64) WriteFigures {
	var w WriteFigures
	var lat []time.Duration
	for _, op := range ops {
		in, out := op.Input.(Op), op.Output.(Outcome)
		if _, ok := writeKinds[in.Kind]; !ok || op.Call < from || op.Call >= to {
			continue
		}
		switch {
		case out.Unknown:
			w.Failed++
		case out.Code/100 == 2:
			w.Acked++
			if op.Return != math.MaxInt64 {
				lat = append(lat, time.Duration(op.Return-op.Call))
			}
		default:
			w.Refused++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		w.P50, w.P99, w.Max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	return w
}

// failedAnswers returns how many more answers after than before counts
// that were no answer or a 5xx (Recorder.Codes snapshots): reads too, which
// the history leaves out when they got no answer.
func failedAnswers(before, after map[int]int) int {
	n := 0
	for code, c := range after {
		if code == 0 || code >= 500 {
			n += c - before[code]
		}
	}
	return n
}

// memberView is the view of GET / (view.digest, view.members).
type memberView struct {
	Digest  string `json:"digest"`
	Members int    `json:"members"`
}

// readView reads the view a member's GET / shows.
func readView(hc *http.Client, base string) (memberView, error) {
	var info struct {
		View *memberView `json:"view"`
	}
	if err := getJSON(hc, base+"/", &info); err != nil {
		return memberView{}, err
	}
	if info.View == nil {
		return memberView{}, errors.New("GET / shows no view")
	}
	return *info.View, nil
}

// viewDigests returns each running node's view digest and member count
// ("digest/members").
func (r *run) viewDigests() (map[string]string, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	out := map[string]string{}
	for _, n := range r.cluster.Nodes {
		v, err := readView(hc, n.URL())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.ID, err)
		}
		out[n.ID] = fmt.Sprintf("%s/%d", v.Digest, v.Members)
	}
	return out, nil
}

// agreeOnViews polls the view digests until every node shows the same
// (listing periods may be a moment apart) or timeout passes; it returns
// the digests last seen and whether they agreed.
func (r *run) agreeOnViews(timeout time.Duration) (map[string]string, bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := r.viewDigests()
		if err == nil {
			same := true
			for _, v := range d {
				for _, w := range d {
					same = same && v == w
				}
			}
			if same {
				return d, true, nil
			}
		}
		if time.Now().After(deadline) {
			return d, false, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ownerDisagreements asks every node for every order (askOwners, each
// request retried for up to 5 s) and returns the orders whose owner differs
// between nodes or that some node could not answer, with an example.
func (r *run) ownerDisagreements(orders []string) (disagree, unanswered int, example string) {
	disagree, unanswered, examples := agreement(askOwners(r.cluster, orders, 5*time.Second))
	if len(examples) > 0 {
		example = examples[0]
	}
	return disagree, unanswered, example
}

// orderOwner returns the X-Order-Owner of GET /orders/{id} through base
// ("" for an order that does not exist), asked again after a failure for up
// to retry (once with 0).
func orderOwner(hc *http.Client, base, id string, retry time.Duration) (string, error) {
	deadline := time.Now().Add(retry)
	for {
		res, err := hc.Get(base + "/orders/" + id)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode < 500 {
				return res.Header.Get("X-Order-Owner"), nil
			}
			err = fmt.Errorf("GET %s/orders/%s: %s", base, id, res.Status)
		}
		if !time.Now().Before(deadline) {
			return "", err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// datedEvent is an event of an order's history with its date.
type datedEvent struct {
	Type        string     `json:"type"`
	Version     uint64     `json:"version"`
	CreatedAt   *time.Time `json:"createdAt"`
	PaidAt      *time.Time `json:"paidAt"`
	ShippedAt   *time.Time `json:"shippedAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	CancelledAt *time.Time `json:"cancelledAt"`
}

func (e datedEvent) at() (time.Time, bool) {
	for _, t := range []*time.Time{e.CreatedAt, e.PaidAt, e.ShippedAt, e.DeliveredAt, e.CancelledAt} {
		if t != nil {
			return *t, true
		}
	}
	return time.Time{}, false
}
