package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/labstack/echo/v4"

	"github.com/ordersystem/ordersystem/actors"
	"github.com/ordersystem/ordersystem/cluster"
	"github.com/ordersystem/ordersystem/codec"
	"github.com/ordersystem/ordersystem/feed"
	httpapi "github.com/ordersystem/ordersystem/http"
	"github.com/ordersystem/ordersystem/internal/backoff"
	"github.com/ordersystem/ordersystem/internal/memwatch"
	"github.com/ordersystem/ordersystem/metrics"
	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/readmodel"
	"github.com/ordersystem/ordersystem/supervisor"
	"github.com/ordersystem/ordersystem/transport"
)

// Version is the service version reported by GET /.
var Version = "0.1.0"

// Node is a running OrderSystem node.
type Node struct {
	cfg       Config
	log       *slog.Logger
	conns     connections
	backend   persistence.Backend
	transport transport.Transport
	readModel *readmodel.ReadModel
	consumer  *readmodel.Consumer
	subs      []transport.Subscription
	member    *cluster.Member
	registry  closableRegistry
	secretMu  sync.Mutex
	// writeProbeAt and writeProbeOK are writable's last live ping of
	// persistence while the supervisor says it is down.
	writeProbeAt atomic.Int64
	writeProbeOK atomic.Bool
	secret       []byte // the cluster secret last read from the registry
	supSystem    *actor.ActorSystem
	driver       *actors.OutboxDriver
	events       *feed.Hub  // the event streams (GET /events)
	driverRun    chan error // Run's result, once the driver runs
	snapshots    *readmodel.Snapshotter
	memory       *memwatch.Watch    // whether the live heap nears the memory limit
	memStop      func()             // ends the watch's Run and waits for it
	snapStop     context.CancelFunc // ends the snapshotter's Run
	snapRun      chan error         // Run's result, once the snapshotter runs
	restored     readmodel.RestoreReport
	outbox       *actors.OutboxStats
	outboxCl     outboxView // the cluster's outbox figures, cached
	health       *health
	board        *supervisor.Board
	metrics      *metrics.Metrics
	traces       traces // the tracer of every layer, and the provider to flush
	api          *echo.Echo
	listener     net.Listener
	startedAt    time.Time

	serveErr     chan error
	shutdownOnce sync.Once
	shutdownErr  error
	closeOnce    sync.Once
	closeErr     error
}

// Start builds and starts a node: it returns once the node serves HTTP and
// is ready, or with an error naming what failed (nothing is left running).
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeID == "auto" {
		host, _ := os.Hostname()
		if host == "" {
			host = "node"
		}
		cfg.NodeID = host + "-" + strconv.Itoa(cfg.Port)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.With(slog.String("node_id", cfg.NodeID))
	n := &Node{cfg: cfg, log: log, startedAt: time.Now(), serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()

	// Listen first: a port in use is the most common start-up mistake.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.HTTPHost, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("HTTP port %d: %w (is another node running? choose another with --port)", cfg.Port, err)
	}
	n.listener = ln

	if err = n.conns.open(ctx, cfg, log); err != nil {
		return nil, err
	}
	if b, ok := ctx.Value(backendKey{}).(persistence.Backend); ok {
		n.backend = b
	} else if n.backend, err = openPersistence(ctx, cfg, n.conns, log); err != nil {
		return nil, err
	}
	d := n.backend.Describe()
	log.Info("persistence ready", slog.String("backend", d.Name), slog.String("profile", d.Profile), slog.String("address", d.Address), slog.String("durability", d.Durability),
		slog.Int("partitions", n.backend.Partitions()))
	n.outbox = actors.NewOutboxStats(n.backend.Partitions())
	if n.transport, err = openTransport(ctx, cfg, n.conns, log); err != nil {
		return nil, err
	}
	log.Info("transport ready", slog.String("backend", n.transport.Name()))

	n.metrics = metrics.New()
	if n.traces, err = startTracing(cfg, log); err != nil {
		return nil, err
	}
	tracer := n.traces.tracer

	// Read side: subscribe first, then rebuild from the journal, so that no
	// event falls between the two (duplicates are dropped by version).
	n.readModel = readmodel.New(n.backend)
	n.consumer = readmodel.NewConsumer(n.readModel, readmodel.ConsumerConfig{Metrics: n.metrics, Tracer: tracer, Logger: log, Now: cfg.Now})
	sub, err := n.transport.Subscribe(ctx, transport.SubscribeOptions{}, n.consumer.Handle)
	if err != nil {
		return nil, fmt.Errorf("subscribe the read model: %w", err)
	}
	n.subs = append(n.subs, sub)
	// The event logger reads the whole stream a second time (a consumer
	// group of its own on Redis, a durable consumer on NATS): only when it
	// logs (--log-level debug).
	if log.Enabled(ctx, slog.LevelDebug) {
		logSub, err := n.transport.Subscribe(ctx, transport.SubscribeOptions{Group: "order-event-logger"}, n.logEvents)
		if err != nil {
			return nil, fmt.Errorf("subscribe the event logger: %w", err)
		}
		n.subs = append(n.subs, logSub)
	}
	rep, err := n.readModel.Restore(ctx, n.backend, n.snapshotLoader(), log)
	var incomplete *readmodel.IncompleteError
	switch {
	case errors.As(err, &incomplete):
		// The journal answers but cannot lay out one of its records: serve
		// anyway (the write side reads each order's own stream) rather
		// than refuse to start on every node; GET /health reports it.
		log.Error("read model incomplete: a journal partition's log cannot be read past a record; orders of the partition journaled after it are missing from /orders until they change",
			slog.Int("partition", incomplete.Partition), slog.Uint64("position", incomplete.After), slog.Any("error", incomplete.Err))
	case err != nil:
		return nil, err
	}
	quarantined, recent := n.readModel.Quarantined(healthListMax)
	var records, loaded uint64
	for p := range rep.Positions {
		records += rep.Positions[p]
		loaded += rep.Loaded[p]
	}
	n.metrics.SetReadModelRestore(rep.FromSnapshot, rep.Tail)
	n.restored = rep
	log.Info("read model rebuilt", slog.Int("partitions", len(rep.Positions)), slog.Uint64("log_positions", records), slog.Int("orders", n.readModel.Stats().TotalOrders),
		slog.Int("quarantined_orders", quarantined), slog.Int("snapshot_partitions", rep.FromSnapshot), slog.Uint64("snapshot_positions", loaded),
		slog.Int("snapshot_orders", rep.SnapshotOrders), slog.Uint64("tail_records", rep.Tail), slog.Duration("rebuild_time", rep.Duration))
	for _, q := range recent {
		log.Error("order quarantined: a record of its journal stream cannot be read; the read model leaves it out and its actor refuses it",
			slog.String("order_id", q.OrderID), slog.Uint64("version", q.Version), slog.Int("partition", q.Partition), slog.Uint64("position", q.Position),
			slog.String("error", q.Reason))
	}

	// Write side: the order and outbox kinds on a cluster member. The kinds,
	// the member that hosts them and the driver that drains the outbox
	// refer to one another: the closures read n.member and n.driver, both
	// set before the member starts.
	partitions := n.backend.Partitions()
	n.events = feed.New(n.backend, feed.Options{Encode: httpapi.EncodeEvent, Logger: log})
	// On the in-memory journal the order actors are its only writers: reads
	// of an active order are answered from its committed state.
	var published *actors.Published
	if cfg.Persistence == InMemory {
		published = actors.NewPublished()
	}
	n.watchMemory(log)
	orderKind := actors.NewOrderKind(actors.OrderConfig{
		Published:     published,
		Journal:       n.backend,
		Snapshots:     n.backend,
		SnapshotEvery: uint64(cfg.SnapshotEvery),
		NodeID:        cfg.NodeID,
		IdleTimeout:   cfg.IdleTimeout,
		Crowded:       n.memory.Crowded,
		SoleWriter:    cfg.Persistence == InMemory,
		IOTimeout:     ioTimeout(cfg.Persistence),
		InlineCalls:   cfg.Persistence == InMemory,
		Appended: func(id string) {
			n.driver.Nudge(persistence.PartitionOf(id, partitions))
			n.events.Nudge()
		},
		Serving: func() error { return n.member.Serving() },
		Metrics: n.metrics,
		StorageFailed: func(error) {
			if b := n.board; b != nil {
				b.Report(componentPersistence)
			}
		},
		Quarantined: func(id string, err *codec.CorruptError) { n.readModel.Quarantine(id, err) },
		Tracer:      tracer,
		Logger:      log,
		Now:         cfg.Now,
	})
	outboxKind := actors.NewOutboxKind(actors.OutboxConfig{
		Journal: n.backend, Publisher: n.transport, BatchSize: cfg.OutboxBatch, Stats: n.outbox, Metrics: n.metrics, Tracer: tracer, Logger: log, Now: cfg.Now,
	})
	serverTLS, clientTLS, err := cfg.peerTLS()
	if err != nil {
		return nil, err
	}
	n.member = cluster.NewMember(cluster.MemberConfig{
		Node: cluster.Config{
			ServerTLS:     serverTLS,
			ClientTLS:     clientTLS,
			NodeID:        cfg.NodeID,
			Host:          remoteHost(cfg),
			Port:          cfg.remotePort(),
			AdvertiseHost: cfg.AdvertiseHost,
			Kinds:         []*pcluster.Kind{orderKind, outboxKind},
			LocalCalls:    []string{actors.OrderKind, actors.OutboxKind},
			LocalOnly:     !cfg.Cluster,
			Logger:        log,
			// Reachability probes sized by the lease (see cluster/probe.go):
			// probes every 500 ms (at most TTL/4) within TTL/4; fence after
			// reaching fewer than a majority for 2 TTL (longer than a dead
			// member's record can outlive it: TTL plus a listing, TTL/8);
			// report a divergence that outlasts two listings and a probe.
			ProbeInterval:   min(500*time.Millisecond, cfg.LeaseTTL/4),
			ProbeTimeout:    cfg.LeaseTTL / 4,
			IsolationBound:  2 * cfg.LeaseTTL,
			DivergenceBound: 2*(cfg.LeaseTTL/8) + min(500*time.Millisecond, cfg.LeaseTTL/4),
			Now:             cfg.Now,
		},
		NewProvider: n.newProvider,
		Secret:      n.clusterSecret,
		Rejoined:    func() { n.driver.NudgeAll() },
		// Rejoins at most 1 s apart: with the default 5 s cap a member
		// fenced by a backend outage of 5 s retried up to 3 s after the
		// backend was back (backend-restart drill), and each attempt only
		// costs a refused registration.
		Backoff: backoff.Policy{Base: 200 * time.Millisecond, Max: time.Second},
	})
	n.driver = actors.NewOutboxDriver(n.member, partitions, cfg.OutboxInterval, log).WithLinger(cfg.OutboxLinger)
	if err := n.member.Start(ctx); err != nil {
		return nil, err
	}
	// The supervisor tree watches every dependency and feeds readiness. It
	// lives in its own actor system, which outlives cluster incarnations.
	n.supSystem = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	n.board, _, err = supervisor.Start(n.supSystem, supervisor.Config{
		Checks:   n.checks(),
		Interval: cfg.HealthInterval,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("start the supervisor: %w", err)
	}
	n.metrics.OnScrape(func() {
		f := n.outboxFigures()
		lags := make([]uint64, len(f.Partitions))
		for i, p := range f.Partitions {
			lags[i] = p.Lag
		}
		n.metrics.SetOutboxLag(f.Lag, lags)
		n.metrics.SetClusterMembers(len(n.member.Members()))
		v := n.member.View()
		n.metrics.SetClusterView(v.Sum, v.Members)
		rs := n.member.Reachability()
		peers := make([]metrics.Peer, len(rs))
		for i, r := range rs {
			peers[i] = metrics.Peer{Address: r.Address, Reachable: r.Reachable, Suspect: r.Suspect, RoundTrip: r.RoundTrip}
		}
		ps := n.member.ProbeStats()
		n.metrics.SetClusterReachability(peers, metrics.ProbeTotals{Probes: ps.Sent, Failures: ps.Failed, Divergences: ps.Divergences, FailedFast: ps.FailedFast})
		q, _ := n.readModel.Quarantined(0)
		n.metrics.SetQuarantinedOrders(q)
		for _, st := range n.board.All() {
			n.metrics.SetBackendUp(st.Component, st.Up)
		}
	})
	n.driverRun = make(chan error, 1)
	go func() { n.driverRun <- n.driver.Run(context.Background()) }()
	n.driver.NudgeAll() // publish whatever an earlier run left behind
	n.startSnapshotter(log)

	n.health = newHealth(n)
	n.api = httpapi.New(httpapi.Config{
		Orders:           actors.NewOrderClient(n.member).WithTracer(tracer),
		Committed:        n.committed(published),
		ReadModel:        n.readModel,
		Health:           n.health,
		Writable:         n.writable,
		Info:             n.info,
		Outbox:           n.outboxFigures,
		ReadModelFigures: n.readModelFigures,
		APIToken:         cfg.APIToken,
		Metrics:          n.metrics,
		ProtectMetrics:   cfg.ProtectMetrics,
		MaxInFlight:      cfg.MaxInFlight,
		MaxInFlightReads: cfg.MaxInFlightReads,
		RequestTimeout:   cfg.RequestTimeout,
		Events:           n.events,
		Tracer:           tracer,
		Logger:           log,
	})
	srv := cfg.httpServer(n.api)
	n.api.Server = srv
	if srv.TLSConfig, err = cfg.httpTLS(); err != nil {
		return nil, err
	}
	ln = cfg.httpListener(ln)
	go func() {
		if srv.TLSConfig != nil {
			n.serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		n.serveErr <- srv.Serve(ln)
	}()
	remoteAddr := n.member.Address()
	if !cfg.Cluster {
		remoteAddr = "none (standalone)"
	}
	log.Info("node ready", slog.String("mode", cfg.Mode()), slog.String("http", ln.Addr().String()),
		slog.String("remote", remoteAddr), slog.Duration("start_time", time.Since(n.startedAt)))
	return n, nil
}

// backendKey is the context key of a persistence backend that Start uses
// instead of opening the configured one. Only the tests set it (see
// export_test.go), to give an in-memory journal to several node lifetimes.
type backendKey struct{}

// remoteHost is where the node-to-node endpoint listens: every interface
// (both IP versions) when the node advertises an address for other
// machines, else loopback
// (a cluster of processes on one machine, the README's three-terminal cluster quick start).
func remoteHost(cfg Config) string {
	if cfg.AdvertiseHost != "" {
		return "::" // every interface, IPv4 and IPv6 (IPv4 only where the host has no IPv6)
	}
	return "127.0.0.1"
}

// logEvents logs one structured line per event (the .NET original's
// OrderEventLogger consumer) at debug level, so that nothing is logged per
// request at info under load.
func (n *Node) logEvents(ctx context.Context, batch []transport.Message) error {
	if !n.log.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	for _, m := range batch {
		n.log.Debug("order event", slog.String("event_id", m.ID()), slog.String("type", m.Type), slog.String("order_id", m.OrderID), slog.Uint64("version", m.Version))
	}
	return nil
}

// Addr is the HTTP address the node listens on.
func (n *Node) Addr() string { return n.listener.Addr().String() }

// Done delivers the error of the HTTP server if it stops by itself.
func (n *Node) Done() <-chan error { return n.serveErr }

// outboxFigures is where the outboxes stand, for GET /, GET /stats, GET
// /health and the metrics: the cluster's lag, checkpoint and head of every
// partition, read from the persistence backend (every node reports the
// same, whichever hosts the outboxes), where each partition's outbox lives,
// and this node's own counts.
func (n *Node) outboxFigures() httpapi.OutboxFigures {
	v := n.outboxCl.get(n.backend, n.outbox)
	f := httpapi.OutboxFigures{Published: n.outbox.Published.Load(), Failures: n.outbox.Failures.Load(), DeadLettered: n.outbox.DeadLettered.Load(),
		Partitions: make([]httpapi.OutboxPartition, len(v))}
	var latest *actors.CheckpointReset
	for p, pos := range v {
		f.Lag += pos.lag
		f.CheckpointAhead = f.CheckpointAhead || pos.ahead
		f.Partitions[p] = httpapi.OutboxPartition{Partition: p, Checkpoint: pos.checkpoint, Head: pos.head, Lag: pos.lag,
			CheckpointAhead: pos.ahead, Owner: n.member.Owner(actors.OutboxIdentity(p), actors.OutboxKind)}
		if r := n.outbox.Partition(p).LastReset(); r != nil && (latest == nil || r.At.After(latest.At)) {
			latest = r
		}
	}
	if latest != nil {
		f.CheckpointAhead = true
		f.CheckpointReset = &httpapi.CheckpointReset{Partition: latest.Partition, Checkpoint: latest.Checkpoint,
			StoredCheckpoint: latest.Stored, Head: latest.Head, At: latest.At}
	}
	return f
}

// outboxFiguresTTL is how long the cluster's outbox figures are reused, so
// that scrapes and page loads do not each read the backend.
const outboxFiguresTTL = time.Second

// outboxView caches the cluster's outbox figures. Callers that arrive while
// one reads the backend wait for its answer instead of reading again.
type outboxView struct {
	mu     sync.Mutex
	readAt time.Time
	parts  []outboxPosition
}

type outboxPosition struct {
	known                 bool // the backend answered once
	checkpoint, head, lag uint64
	ahead                 bool // the stored checkpoint is past the head
}

// get returns the figures of every partition, read again when older than
// outboxFiguresTTL. A partition whose figures the backend does not give
// keeps the last ones it gave, or this node's outbox's own before it ever
// answered.
func (v *outboxView) get(b persistence.Backend, local *actors.OutboxStats) []outboxPosition {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.parts == nil {
		v.parts = make([]outboxPosition, b.Partitions())
	}
	if time.Since(v.readAt) < outboxFiguresTTL {
		return slices.Clone(v.parts)
	}
	v.readAt = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for p := range v.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos, err := readOutboxPosition(ctx, b, p)
			switch {
			case err == nil:
				v.parts[p] = pos
			case !v.parts[p].known:
				s := local.Partition(p)
				v.parts[p] = outboxPosition{checkpoint: s.Checkpoint.Load(), head: s.Head.Load(), lag: s.Lag()}
			}
		}()
	}
	wg.Wait()
	return slices.Clone(v.parts)
}

// readOutboxPosition reads partition p's outbox checkpoint (the one every
// member's activation of it saves) and how far the partition's log is past
// it.
func readOutboxPosition(ctx context.Context, b persistence.Backend, p int) (outboxPosition, error) {
	log := b.Log(p)
	cp, head, err := persistence.LogCheckpointAndHead(ctx, b, log, actors.CheckpointName(p))
	if err != nil {
		return outboxPosition{}, err
	}
	lag, err := log.Behind(ctx, cp)
	if err != nil {
		return outboxPosition{}, err
	}
	return outboxPosition{known: true, checkpoint: cp, head: head, lag: lag, ahead: cp > head}, nil
}

// healthListMax bounds the dead letters and quarantined orders listed in
// GET /health.
const healthListMax = 20

// readModelFigures is how the read side stands, for GET /stats.
func (n *Node) readModelFigures() httpapi.ReadModelFigures {
	q, _ := n.readModel.Quarantined(0)
	f := httpapi.ReadModelFigures{Applied: n.readModel.Applied(), Repaired: n.readModel.Repaired(),
		DeadLettered: n.consumer.DeadLettered(), Quarantined: q}
	if n.cfg.Cluster && n.cfg.Persistence == InMemory {
		f.Scope = localScope
	}
	return f
}

// localScope is the read side's scope in an in-memory --peers cluster.
const localScope = "this node only: in-memory --peers experiment; /orders, /stats and the event streams show the orders whose events this node journaled, not the cluster's"

// readModelHealth is the read side's section of GET /health.
func (n *Node) readModelHealth() *httpapi.ReadModelHealth {
	h := &httpapi.ReadModelHealth{ReadModelFigures: n.readModelFigures(),
		DeadLetters: []httpapi.DeadLetter{}, QuarantinedOrders: []httpapi.QuarantinedOrder{}}
	for _, d := range n.consumer.DeadLetters() {
		h.DeadLetters = append(h.DeadLetters, httpapi.DeadLetter{EventID: d.EventID, Type: d.Type, Reason: d.Reason,
			Error: d.Error, Attempts: d.Attempts, At: d.At})
	}
	if inc := n.readModel.Incomplete(); inc != nil {
		h.RebuildStoppedAt, h.RebuildError = inc.After, inc.Err.Error()
	}
	_, recent := n.readModel.Quarantined(healthListMax)
	for _, q := range recent {
		h.QuarantinedOrders = append(h.QuarantinedOrders, httpapi.QuarantinedOrder{OrderID: q.OrderID, Version: q.Version,
			Partition: q.Partition, Position: q.Position, Error: q.Reason, At: q.At})
	}
	return h
}

// info is the body of GET /.
func (n *Node) info() httpapi.Info {
	d := n.backend.Describe()
	return httpapi.Info{
		Service: "ordersystem", Version: Version, NodeID: n.cfg.NodeID, Mode: n.cfg.Mode(),
		Transport:   n.transport.Name(),
		Persistence: httpapi.BackendInfo{Name: d.Name, Address: d.Address, Durability: d.Durability, Profile: d.Profile},
		Members:     apiMembers(n.member.Members(), n.member.Reachability()),
		View:        n.clusterView(),
		StartedAt:   n.startedAt.UTC(), Outbox: n.outboxFigures(),
	}
}

// clusterView is the routing view for GET /, nil on a standalone node.
func (n *Node) clusterView() *httpapi.ClusterView {
	if !n.cfg.Cluster {
		return nil
	}
	v := n.member.View()
	return &httpapi.ClusterView{Digest: v.Digest, Members: v.Members}
}

// apiMembers converts the member view for GET / (nil stays nil), with what
// this node's probes know of each other member.
func apiMembers(ms []cluster.MemberInfo, reach []cluster.PeerReachability) []httpapi.Member {
	if ms == nil {
		return nil
	}
	byID := make(map[string]cluster.PeerReachability, len(reach))
	for _, r := range reach {
		byID[r.ID] = r
	}
	out := make([]httpapi.Member, len(ms))
	for i, m := range ms {
		out[i] = httpapi.Member{ID: m.ID, NodeID: m.NodeID, Address: m.Address, Kinds: m.Kinds}
		if r, ok := byID[m.ID]; ok {
			out[i].Reachability = &httpapi.Reachability{Reachable: r.Reachable, Direct: r.Direct, Suspect: r.Suspect,
				RoundTripMs: float64(r.RoundTrip.Microseconds()) / 1000, LastReached: r.LastReached.UTC(), ViewDigest: r.ViewDigest}
		}
	}
	return out
}

// Shutdown drains the node: readiness turns 503 and, for the drain delay
// (Config.DrainDelay), the node goes on serving every route, so that load
// balancers see the 503 and stop sending before the port closes; then the
// HTTP server stops accepting and finishes requests in flight, the outbox
// publishes what is journaled, the member leaves the cluster and
// connections close. ctx bounds it all, the delay included: if ctx ends
// during the delay, the rest goes on at once.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() { n.shutdownErr = n.shutdown(ctx) })
	return n.shutdownErr
}

func (n *Node) shutdown(ctx context.Context) error {
	var errs []error
	n.health.shuttingDown.Store(true)
	if d := n.cfg.DrainDelay; d > 0 {
		n.log.Info("draining: readiness answers 503, still serving until the drain delay ends", slog.Duration("drain_delay", d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	// The event streams never end by themselves: end them (their clients
	// reconnect elsewhere with their last id) so the HTTP server can stop.
	n.events.Close()
	if err := n.api.Server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop HTTP: %w", err))
	}
	// Flush the outboxes so that everything acknowledged is published: a
	// drain reads each partition to its head; drain again while one still
	// found something (requests in flight may have appended since).
	for range 5 {
		published, err := n.driver.DrainAll(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("flush outbox: %w", err))
			break
		}
		if published == 0 {
			break
		}
	}
	errs = append(errs, n.closeAll())
	return errors.Join(errs...)
}

// watchMemory starts the watch that makes order actors passivate soon
// while the live heap nears the soft memory limit (see internal/memwatch).
func (n *Node) watchMemory(log *slog.Logger) {
	n.memory = memwatch.New(memwatch.Runtime(), log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.memory.Run(ctx, memwatch.Every)
	}()
	n.memStop = func() { cancel(); <-done }
}

// closeAll stops everything that was started, in reverse order; idempotent.
func (n *Node) closeAll() error {
	n.closeOnce.Do(func() {
		var errs []error
		// The driver may not run (the start failed before it did) and the
		// member may be gone (a rejoin was failing): stop it regardless.
		if n.driver != nil {
			n.driver.Stop()
		}
		if n.snapStop != nil {
			n.snapStop()
			errs = append(errs, <-n.snapRun)
		}
		if n.memStop != nil {
			n.memStop()
		}
		if n.events != nil {
			n.events.Close()
		}
		if n.driverRun != nil {
			if err := <-n.driverRun; err != nil {
				errs = append(errs, fmt.Errorf("outbox driver: %w", err))
			}
		}
		if n.member != nil {
			// Ends a rejoin in progress too.
			n.member.Stop(n.cfg.Cluster)
		}
		if n.supSystem != nil {
			n.supSystem.Shutdown()
		}
		if n.registry != nil {
			errs = append(errs, n.registry.Close())
		}
		for _, s := range n.subs {
			errs = append(errs, s.Close())
		}
		if n.transport != nil {
			errs = append(errs, n.transport.Close())
		}
		if n.backend != nil {
			errs = append(errs, n.backend.Close())
		}
		errs = append(errs, n.conns.close()) // last: every backend above used them
		// The spans of everything above are ended now: export them.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, n.traces.shutdown(ctx))
		cancel()
		if n.listener != nil {
			_ = n.listener.Close()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Components watched by the supervisor.
const (
	componentPersistence = "persistence"
	componentTransport   = "transport"
	componentMembership  = "membership"
	// componentActors is a standalone node's actor placement (a cluster
	// node's membership check covers it).
	componentActors = "actors"
)

// memberComponent names the check of the member: its membership in a
// cluster, its actor placement alone.
func (n *Node) memberComponent() string {
	if n.cfg.Cluster {
		return componentMembership
	}
	return componentActors
}

func (n *Node) checks() map[string]supervisor.Check {
	c := map[string]supervisor.Check{
		componentPersistence: n.backend.Ping,
		componentTransport:   n.transport.Ping,
	}
	c[n.memberComponent()] = n.member.Check
	return c
}

// writable refuses writes at once while persistence is known to be down.
//
// The supervisor learns that a backend is back only at its next re-check
// (backoff up to 5 s), so while it says down a live ping decides, at most one
// per writeProbeEvery: a backend that answers again takes writes at once, as
// readiness turns 200 on its own ping, and the monitor is told to check now.
func (n *Node) writable() error {
	st, ok := n.board.Get(componentPersistence)
	if !ok || st.Up || n.persistenceAnswers() {
		return nil
	}
	return fmt.Errorf("persistence is unavailable (%s); retry with the same Idempotency-Key", st.LastError)
}

// writeProbeEvery spaces the live pings of writable while persistence is
// down, so a flood of refused writes costs the backend one ping per period.
const writeProbeEvery = 100 * time.Millisecond

// persistenceAnswers pings persistence (300 ms bound) unless it did less than
// writeProbeEvery ago, and returns the latest outcome.
func (n *Node) persistenceAnswers() bool {
	now := time.Now().UnixNano()
	last := n.writeProbeAt.Load()
	if now-last < int64(writeProbeEvery) || !n.writeProbeAt.CompareAndSwap(last, now) {
		return n.writeProbeOK.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ok := n.backend.Ping(ctx) == nil
	n.writeProbeOK.Store(ok)
	if ok {
		n.board.Report(componentPersistence)
	}
	return ok
}

// health implements httpapi.Health: liveness never depends on a backend;
// readiness pings every backend with a short timeout (cached briefly) and
// reports failures to the supervisor, which then watches with backoff.
type health struct {
	n            *Node
	shuttingDown atomic.Bool
	mu           sync.Mutex
	checkedAt    time.Time
	ok           bool
	report       httpapi.HealthReport
}

func newHealth(n *Node) *health { return &health{n: n} }

func (h *health) Live() error {
	if h.n.supSystem == nil || h.n.supSystem.IsStopped() {
		return errors.New("actor system not running")
	}
	return nil
}

// readyCache is how long a readiness answer is reused.
const readyCache = 250 * time.Millisecond

// Ready checks the backends live with a short timeout.
func (h *health) Ready(ctx context.Context) (bool, httpapi.HealthReport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.checkedAt) < readyCache && !h.shuttingDown.Load() {
		return h.ok, h.report
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rep := httpapi.HealthReport{NodeID: h.n.cfg.NodeID, Components: map[string]httpapi.ComponentHealth{}}
	ok := true
	check := func(name string, f func(context.Context) error) {
		start := time.Now()
		err := f(ctx)
		c := httpapi.ComponentHealth{Status: "up", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
		st, found := h.n.board.Get(name)
		if err != nil || found && !st.Up {
			// A failure, or a success the monitor has not seen yet: it
			// checks at once instead of at its next backoff.
			h.n.board.Report(name)
		}
		if err != nil {
			c.Status, c.Error, ok = "down", err.Error(), false
		}
		if found {
			c.Monitor = &httpapi.Monitor{Up: st.Up, LastError: st.LastError, LatencyMS: st.LatencyMS,
				Since: st.Since, CheckedAt: st.CheckedAt, Failures: st.Failures}
		}
		rep.Components[name] = c
	}
	check(componentPersistence, h.n.backend.Ping)
	check(componentTransport, h.n.transport.Ping)
	check(h.n.memberComponent(), h.n.member.Check)
	if h.shuttingDown.Load() {
		ok = false
		rep.Components["node"] = httpapi.ComponentHealth{Status: "down", Error: "shutting down"}
	}
	rep.Status = "up"
	if !ok {
		rep.Status = "down"
	}
	// What the read side skipped is reported, never a readiness failure.
	rep.ReadModel = h.n.readModelHealth()
	outbox := h.n.outboxFigures()
	rep.Outbox = &outbox
	h.ok, h.report, h.checkedAt = ok, rep, time.Now()
	return ok, rep
}

// committed is the API's read of an active order's committed state (see
// actors.Published), nil without one. A member that does not serve (fenced,
// cut off, rejoining) answers nothing from it: the read goes to the actor,
// which refuses it.
func (n *Node) committed(p *actors.Published) func(string) (order.State, string, bool) {
	if p == nil {
		return nil
	}
	return func(id string) (order.State, string, bool) {
		if n.member.Serving() != nil {
			return order.State{}, "", false
		}
		s, ok := p.Get(id)
		return s, n.cfg.NodeID, ok
	}
}

// ioTimeout is the order actors' bound on one journal call: none for the
// in-memory journal, which answers at once; the actors' default otherwise.
func ioTimeout(p string) time.Duration {
	if p == InMemory {
		return -1
	}
	return 0
}
