package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"

	ordercore "github.com/ordersystem/ordersystem/order"
)

// quotedID is an order id quoted inside an error message; bareID one that
// is not (protoactor's "order <id>: actor unavailable ...").
var (
	quotedID = regexp.MustCompile(`"[0-9a-f]{16}"`)
	bareID   = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
)

// Recorder keeps every client operation, safe for concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	owner map[string]string // order -> node id of the last answer
	codes map[int]int
	errs  map[string]int // 5xx answers by message
	// lost counts the requests that got no HTTP answer, by noAnswerKind.
	lost map[string]int
}

// NewRecorder starts a history.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), owner: map[string]string{}, codes: map[int]int{}, errs: map[string]int{}, lost: map[string]int{}}
}

func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *Recorder) add(client int, in Op, call int64, out Outcome, owner string) {
	if out.Unknown && in.Kind == "read" {
		// A read with no answer has no effect and tells nothing: leaving
		// it out keeps the checker's search small.
		r.mu.Lock()
		r.codes[out.Code]++
		r.mu.Unlock()
		return
	}
	ret := r.now()
	if out.Unknown {
		ret = math.MaxInt64 // may take effect at any later time
	}
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	if owner != "" {
		r.owner[in.Order] = owner
	}
	r.codes[out.Code]++
	r.mu.Unlock()
}

// Owners returns the orders whose last answer came from node id.
func (r *Recorder) Owners(node string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for o, n := range r.owner {
		if n == node {
			out = append(out, o)
		}
	}
	sort.Strings(out)
	return out
}

// Owner returns the node id that last answered for order ("" if none did).
func (r *Recorder) Owner(order string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owner[order]
}

// orderForKey is the id of the order a create with key makes.
func orderForKey(key string) string { return ordercore.IDForKey("drill-" + key) }

// Orders returns every order id the workload created (or tried to).
func (r *Recorder) Orders() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, op := range r.ops {
		o := op.Input.(Op).Order
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// History returns a copy of every recorded operation.
func (r *Recorder) History() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// Since returns the duration since the history started of time t.
func (r *Recorder) Since(t time.Time) time.Duration { return t.Sub(r.start) }

// Codes returns how many answers had each status (0 = no answer).
func (r *Recorder) Codes() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int]int, len(r.codes))
	for k, v := range r.codes {
		out[k] = v
	}
	return out
}

// Errors returns the 5xx answers by message.
func (r *Recorder) Errors() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.errs))
	for k, v := range r.errs {
		out[k] = v
	}
	return out
}

// Kinds of requests that got no HTTP answer (Recorder.NoAnswer).
const (
	// NoAnswerRefused: the dial was refused (nothing listened on the port).
	NoAnswerRefused = "connection refused"
	// NoAnswerTimeout: no answer within the client timeout.
	NoAnswerTimeout = "timeout"
	// NoAnswerLost: the connection broke (reset, closed) before an answer.
	NoAnswerLost = "connection lost"
	// NoAnswerOther: any other transport error.
	NoAnswerOther = "other"
)

// noAnswerKind classifies the error of a request that got no HTTP answer.
func noAnswerKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return NoAnswerRefused
	case errors.As(err, &ne) && ne.Timeout():
		return NoAnswerTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		// net/http's unexported error for a connection the server closed
		// before it answered a request net/http would not send again.
		strings.Contains(err.Error(), "server closed idle connection"):
		return NoAnswerLost
	}
	return NoAnswerOther
}

// NoAnswer returns the requests that got no HTTP answer, by kind
// (NoAnswerRefused, ...).
func (r *Recorder) NoAnswer() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.lost)
}

// Check runs the linearizability checker over the history. When it finds
// a violation it also returns the history of the first offending order.
func (r *Recorder) Check(timeout time.Duration) (porcupine.CheckResult, int, string) {
	r.mu.Lock()
	ops := append([]porcupine.Operation(nil), r.ops...)
	r.mu.Unlock()
	m := Model()
	res := porcupine.CheckOperationsTimeout(m, ops, timeout)
	if res != porcupine.Illegal {
		return res, len(ops), ""
	}
	for _, part := range m.Partition(ops) {
		if porcupine.CheckOperationsTimeout(m, part, timeout) == porcupine.Illegal {
			sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
			var b strings.Builder
			for _, op := range part {
				ret := "inf"
				if op.Return != math.MaxInt64 {
					ret = fmt.Sprint(time.Duration(op.Return))
				}
				fmt.Fprintf(&b, "\n  client %d [%s .. %s] %s", op.ClientId, time.Duration(op.Call), ret, m.DescribeOperation(op.Input, op.Output))
			}
			return res, len(ops), b.String()
		}
	}
	return res, len(ops), ""
}

// Client talks to the cluster's nodes.
type Client struct {
	http  *http.Client
	nodes func() []string // base URLs of the nodes to use now
	rec   *Recorder
	round atomic.Int64 // counts Runs, so that each Run's order ids are new
}

// NewClient returns a client over the live nodes' URLs.
func NewClient(rec *Recorder, nodes func() []string, timeout time.Duration) *Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &Client{http: &http.Client{Timeout: timeout, Transport: tr}, nodes: nodes, rec: rec}
}

type orderBody struct {
	OrderID string `json:"orderId"`
	Status  string `json:"status"`
	Version uint64 `json:"version"`
}

// Do performs one recorded operation through a random live node.
func (c *Client) Do(client int, in Op) Outcome {
	nodes := c.nodes()
	return c.DoAt(nodes[rand.IntN(len(nodes))], client, in)
}

// DoAt performs one recorded operation through the node at base.
func (c *Client) DoAt(base string, client int, in Op) Outcome {
	var req *http.Request
	switch in.Kind {
	case "create":
		body := `{"customerId":"drill","items":[{"productId":"p","name":"n","quantity":1,"price":1.25}]}`
		req, _ = http.NewRequest("POST", base+"/orders", bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "drill-"+in.key) // the order id derives from the key
	case "read":
		req, _ = http.NewRequest("GET", base+"/orders/"+in.Order, nil)
	default:
		req, _ = http.NewRequest("POST", base+"/orders/"+in.Order+"/"+in.Kind, nil)
		if in.key != "" {
			req.Header.Set("Idempotency-Key", "drill-"+in.key) // the command id: a retry is applied once
		}
	}
	call := c.rec.now()
	res, err := c.http.Do(req)
	if err != nil {
		c.rec.mu.Lock()
		c.rec.lost[noAnswerKind(err)]++
		c.rec.mu.Unlock()
		out := Outcome{Unknown: true}
		c.rec.add(client, in, call, out, "")
		return out
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	out := Outcome{Code: res.StatusCode}
	if res.StatusCode == http.StatusServiceUnavailable || res.StatusCode >= 500 {
		out = Outcome{Unknown: true, Code: res.StatusCode}
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		msg := e.Error
		if i := strings.Index(msg, ": "); i > 0 && strings.HasPrefix(msg, "order ") {
			msg = msg[i+2:] // drop the order id
		}
		msg = quotedID.ReplaceAllString(msg, `"<order>"`) // group the answers by cause, not by order
		msg = bareID.ReplaceAllString(msg, "<order>")
		if len(msg) > 90 {
			msg = msg[:90]
		}
		c.rec.mu.Lock()
		c.rec.errs[fmt.Sprintf("%d %s", res.StatusCode, msg)]++
		c.rec.mu.Unlock()
	} else if res.StatusCode < 300 {
		var o orderBody
		_ = json.Unmarshal(b, &o)
		out.Status, out.Version = o.Status, o.Version
		if in.Kind == "create" {
			out.Status, out.Version = "Pending", 1
		}
	}
	c.rec.add(client, in, call, out, res.Header.Get("X-Order-Owner"))
	return out
}

// Run drives the workload until ctx ends: each worker walks its own orders
// through create, pay, ship, deliver, reading in between. A Client may Run
// again after a Run returned: the new Run creates new orders.
func (c *Client) Run(ctx context.Context, workers int, created *atomic.Int64) {
	round := c.round.Add(1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-%d-%d", w, i, c.rec.start.UnixNano()%1_000_000)
				if round > 1 {
					key = fmt.Sprintf("r%d-%s", round, key)
				}
				c.walk(ctx, w, key, created)
			}
		}()
	}
	wg.Wait()
}

func (c *Client) walk(ctx context.Context, w int, key string, created *atomic.Int64) {
	order := orderForKey(key)
	out := c.Do(w, Op{Order: order, Kind: "create", key: key})
	if out.Code == 201 {
		created.Add(1)
	}
	for _, kind := range []string{"pay", "ship", "deliver"} {
		if ctx.Err() != nil {
			return
		}
		// Learn the state before each step (and after an unknown outcome).
		r := c.Do(w, Op{Order: order, Kind: "read"})
		for r.Unknown && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			r = c.Do(w, Op{Order: order, Kind: "read"})
		}
		if r.Code == 404 {
			return
		}
		c.Do(w, Op{Order: order, Kind: kind})
	}
	c.Do(w, Op{Order: order, Kind: "read"})
}
