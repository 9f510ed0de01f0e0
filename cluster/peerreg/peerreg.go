package peerreg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

// Path is where a member serves its records.
const Path = "/ordersystem/membership/v1"

// Bounds on what a peer may answer.
const (
	maxBody        = 64 << 10
	maxPeerRecords = 16
)

// ErrClosed is returned by the methods of a closed Registry.
var ErrClosed = errors.New("peer registry closed")

// Options configure a Registry. The zero value of each field but Listen
// takes its default.
type Options struct {
	// Listen is the membership address this member serves on (host:port;
	// port 0 picks a free one, see Registry.Addr).
	Listen string
	// Peers are the membership addresses (host:port) of the members. This
	// member's own address may be among them (it is not asked).
	Peers []string
	// Cluster is the cluster name: a peer that reports another is ignored
	// (default "ordersystem").
	Cluster string
	// Secret, if set, is required of every request and sent with every
	// request to a peer.
	Secret string
	// ServerTLS, if set, serves HTTPS (with ClientAuth as configured, e.g.
	// mutual TLS); ClientTLS, if set, asks the peers over HTTPS. Both or
	// neither.
	ServerTLS, ClientTLS *tls.Config
	// Timeout bounds one request to one peer (default 500 ms).
	Timeout time.Duration
	// MaxLease caps the lease a peer may report for a record (default 1 min):
	// a record of a peer that stopped answering is listed at most this long.
	MaxLease time.Duration
	// Logger receives peers that stop or start answering (default: discard).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Cluster == "" {
		o.Cluster = "ordersystem"
	}
	if o.Timeout == 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.MaxLease == 0 {
		o.MaxLease = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Registry is a registry.Registry over a static list of peers (see the
// package documentation). Safe for concurrent use; Close stops serving.
type Registry struct {
	opts       Options
	secretHash [sha256.Size]byte
	scheme     string
	log        *slog.Logger

	ln     net.Listener
	srv    *http.Server
	served chan struct{}
	client *http.Client
	peers  []string // without this member's own address

	mu     sync.Mutex
	closed bool
	own    map[string]ownLease
	known  map[string]*peerState // by peer address

	closeOnce sync.Once
}

var _ registry.Registry = (*Registry)(nil)

// ownLease is one of this member's records.
type ownLease struct {
	data    []byte // canonical encoding
	rec     registry.MemberRecord
	expires time.Time
}

// peerState is what is known of one peer.
type peerState struct {
	recs     []peerRecord
	polledAt time.Time // when the request whose answer is in recs was sent
	failing  bool      // last request failed (logged once per change)
}

type peerRecord struct {
	rec     registry.MemberRecord
	expires time.Time
}

// wire types
type membersJSON struct {
	Cluster string       `json:"cluster"`
	Members []memberJSON `json:"members"`
}

type memberJSON struct {
	Record      json.RawMessage `json:"record"`
	LeaseMillis int64           `json:"leaseMillis"`
}

// New validates opts, listens on opts.Listen and starts serving.
func New(opts Options) (*Registry, error) {
	opts.setDefaults()
	if err := registry.ValidateKeyToken("cluster name", opts.Cluster); err != nil {
		return nil, fmt.Errorf("peer membership registry: %w", err)
	}
	if (opts.ServerTLS == nil) != (opts.ClientTLS == nil) {
		return nil, errors.New("peer membership registry: ServerTLS and ClientTLS go together")
	}
	if opts.Timeout < 0 || opts.MaxLease < 0 {
		return nil, fmt.Errorf("peer membership registry: timeout %v and max lease %v must be positive", opts.Timeout, opts.MaxLease)
	}
	for _, p := range opts.Peers {
		if h, port, err := net.SplitHostPort(p); err != nil || h == "" || port == "" {
			return nil, fmt.Errorf("peer membership registry: peer %q is not host:port", p)
		}
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("peer membership registry: listen on %s: %w", opts.Listen, err)
	}
	r := &Registry{
		opts:   opts,
		scheme: "http",
		log:    opts.Logger.With(slog.String("component", "membership")),
		ln:     ln,
		served: make(chan struct{}),
		own:    make(map[string]ownLease),
		known:  make(map[string]*peerState),
	}
	r.secretHash = sha256.Sum256([]byte(opts.Secret))
	self := map[string]bool{opts.Listen: true, ln.Addr().String(): true}
	for _, p := range opts.Peers {
		if !self[p] && !slices.Contains(r.peers, p) {
			r.peers = append(r.peers, p)
		}
	}
	tr := &http.Transport{
		Proxy:                 nil, // membership never goes through an HTTP proxy
		DialContext:           (&net.Dialer{Timeout: opts.Timeout}).DialContext,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
	}
	if opts.ClientTLS != nil {
		tr.TLSClientConfig = opts.ClientTLS.Clone()
		r.scheme = "https"
	}
	r.client = &http.Client{
		Transport:     tr,
		Timeout:       opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, r.serve)
	r.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	srvLn := ln
	if opts.ServerTLS != nil {
		srvLn = tls.NewListener(ln, opts.ServerTLS.Clone())
	}
	go func() {
		defer close(r.served)
		_ = r.srv.Serve(srvLn)
	}()
	return r, nil
}

// Addr is the address the registry serves on.
func (r *Registry) Addr() string { return r.ln.Addr().String() }

// Close stops serving and asking; idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := r.srv.Shutdown(ctx); err != nil {
			_ = r.srv.Close()
		}
		<-r.served
		r.client.CloseIdleConnections()
	})
	return nil
}

// authorized reports whether req carries the secret (always, without one).
func (r *Registry) authorized(req *http.Request) bool {
	if r.opts.Secret == "" {
		return true
	}
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(h[:], r.secretHash[:]) == 1
}

// serve answers a peer with this member's live records.
func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !r.authorized(req) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ordersystem-membership"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	now := time.Now()
	out := membersJSON{Cluster: r.opts.Cluster, Members: []memberJSON{}}
	r.mu.Lock()
	for _, l := range r.liveOwn(now) {
		ms := max(l.expires.Sub(now).Milliseconds(), 1)
		out.Members = append(out.Members, memberJSON{Record: l.data, LeaseMillis: ms})
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// liveOwn returns this member's unexpired records, dropping expired ones.
// Callers hold mu.
func (r *Registry) liveOwn(now time.Time) []ownLease {
	out := make([]ownLease, 0, len(r.own))
	for id, l := range r.own {
		if !now.Before(l.expires) {
			delete(r.own, id)
			continue
		}
		out = append(out, l)
	}
	return out
}

// Register implements registry.Registry: it stores rec among this member's
// records. A live record with rec's id, here or reported by a peer, makes
// it fail with registry.ErrMemberExists.
func (r *Registry) Register(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("register %s: ttl %v must be positive", rec.MemberID, ttl)
	}
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	now := time.Now()
	if l, ok := r.own[rec.MemberID]; ok && now.Before(l.expires) {
		return fmt.Errorf("register %s: %w", rec.MemberID, registry.ErrMemberExists)
	}
	for _, st := range r.known {
		for _, pr := range st.recs {
			if pr.rec.MemberID == rec.MemberID && now.Before(pr.expires) {
				return fmt.Errorf("register %s: a peer lists it: %w", rec.MemberID, registry.ErrMemberExists)
			}
		}
	}
	r.own[rec.MemberID] = ownLease{data: data, rec: rec.Canonical(), expires: now.Add(ttl)}
	return nil
}

// Renew implements registry.Registry for this member's own records.
func (r *Registry) Renew(ctx context.Context, rec registry.MemberRecord, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("renew %s: ttl %v must be positive", rec.MemberID, ttl)
	}
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	now := time.Now()
	l, ok := r.own[rec.MemberID]
	if !ok || !now.Before(l.expires) {
		delete(r.own, rec.MemberID)
		return fmt.Errorf("renew %s: record gone: %w", rec.MemberID, registry.ErrLeaseLost)
	}
	if !bytes.Equal(l.data, data) {
		return fmt.Errorf("renew %s: record belongs to another incarnation: %w", rec.MemberID, registry.ErrLeaseLost)
	}
	l.expires = now.Add(ttl)
	r.own[rec.MemberID] = l
	return nil
}

// Deregister implements registry.Registry for this member's own records.
func (r *Registry) Deregister(ctx context.Context, rec registry.MemberRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := rec.Encode()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.own[rec.MemberID]; ok && bytes.Equal(l.data, data) {
		delete(r.own, rec.MemberID)
	}
	return nil
}

// pollResult is one peer's answer.
type pollResult struct {
	peer string
	sent time.Time
	recs []peerRecord
	err  error
}

// List implements registry.Registry: this member's live records and those
// of its peers (see the package documentation), sorted by member id. It
// fails only when ctx is done or the registry is closed; a peer that fails
// is logged, not an error.
func (r *Registry) List(ctx context.Context) ([]registry.MemberRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	results := make([]pollResult, len(r.peers))
	var wg sync.WaitGroup
	for i, p := range r.peers {
		wg.Go(func() { results[i] = r.ask(ctx, p) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, res := range results {
		r.apply(res)
	}
	now := time.Now()
	byID := make(map[string]registry.MemberRecord)
	for _, st := range r.known {
		for _, pr := range st.recs {
			if now.Before(pr.expires) {
				byID[pr.rec.MemberID] = pr.rec
			}
		}
	}
	for _, l := range r.liveOwn(now) {
		byID[l.rec.MemberID] = l.rec // our own record wins
	}
	out := make([]registry.MemberRecord, 0, len(byID))
	for _, rec := range byID {
		rec.Kinds = append([]string(nil), rec.Kinds...)
		out = append(out, rec)
	}
	registry.SortRecords(out)
	return out, nil
}

// apply records one peer's answer. Callers hold mu.
func (r *Registry) apply(res pollResult) {
	st := r.known[res.peer]
	if st == nil {
		st = &peerState{}
		r.known[res.peer] = st
	}
	if res.sent.Before(st.polledAt) {
		return // an older answer than the one we have
	}
	switch {
	case res.err == nil:
		st.recs, st.polledAt = res.recs, res.sent
		if st.failing {
			r.log.Info("membership peer answers", slog.String("peer", res.peer), slog.Int("records", len(res.recs)))
		}
		st.failing = false
	case errors.Is(res.err, syscall.ECONNREFUSED):
		// Nothing listens there: the member is gone (or not started).
		if len(st.recs) > 0 {
			r.log.Info("membership peer refuses connections; dropping its records", slog.String("peer", res.peer))
		}
		st.recs, st.polledAt = nil, res.sent
		st.failing = true
	default:
		if !st.failing {
			r.log.Warn("membership peer does not answer; keeping its records until their leases end",
				slog.String("peer", res.peer), slog.Any("error", res.err))
		}
		st.failing = true
	}
}

// ask fetches one peer's records.
func (r *Registry) ask(ctx context.Context, peer string) pollResult {
	res := pollResult{peer: peer, sent: time.Now()}
	res.recs, res.err = r.fetch(ctx, peer, res.sent)
	return res
}

func (r *Registry) fetch(ctx context.Context, peer string, sent time.Time) ([]peerRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	u := url.URL{Scheme: r.scheme, Host: peer, Path: Path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if r.opts.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+r.opts.Secret)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("answer over %d bytes", maxBody)
	}
	return r.decode(body, sent)
}

// decode checks and converts one peer's answer.
func (r *Registry) decode(body []byte, sent time.Time) ([]peerRecord, error) {
	var m membersJSON
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("undecodable answer: %w", err)
	}
	if m.Cluster != r.opts.Cluster {
		return nil, fmt.Errorf("member of cluster %q, not %q", m.Cluster, r.opts.Cluster)
	}
	if len(m.Members) > maxPeerRecords {
		return nil, fmt.Errorf("answer lists %d records (at most %d)", len(m.Members), maxPeerRecords)
	}
	out := make([]peerRecord, 0, len(m.Members))
	for _, mj := range m.Members {
		rec, err := registry.DecodeMemberRecord(mj.Record)
		if err != nil {
			return nil, err
		}
		if mj.LeaseMillis <= 0 {
			return nil, fmt.Errorf("record %s has lease %d ms", rec.MemberID, mj.LeaseMillis)
		}
		lease := min(time.Duration(mj.LeaseMillis)*time.Millisecond, r.opts.MaxLease)
		out = append(out, peerRecord{rec: rec, expires: sent.Add(lease)})
	}
	return out, nil
}
