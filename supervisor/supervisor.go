package supervisor

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/ordersystem/ordersystem/internal/backoff"
)

// Check probes one dependency; it must honour ctx.
type Check func(ctx context.Context) error

// Config of the supervisor tree.
type Config struct {
	// Checks are the dependencies to watch, by component name.
	Checks map[string]Check
	// Interval between checks of a healthy dependency (default 30 s).
	Interval time.Duration
	// Timeout bounds one check (default 2 s).
	Timeout time.Duration
	// Backoff between checks of a failed dependency (default 200 ms to 5 s).
	Backoff backoff.Policy
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// StatusChanged is published on the actor system's event stream when a
// dependency goes down or comes back.
type StatusChanged struct{ Status Status }

// Board holds the latest status of every dependency; safe for concurrent use.
type Board struct {
	mu       sync.RWMutex
	statuses map[string]Status
	pids     map[string]*actor.PID
	root     *actor.RootContext
}

// Get returns the status of one component.
func (b *Board) Get(component string) (Status, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, ok := b.statuses[component]
	return s, ok
}

// All returns every status, sorted by component.
func (b *Board) All() []Status {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Status, 0, len(b.statuses))
	for _, s := range b.statuses {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}

// Up reports whether the component is up (unknown components are up).
func (b *Board) Up(component string) bool {
	s, ok := b.Get(component)
	return !ok || s.Up
}

// Report tells the component's monitor that the data path saw an error, so
// it checks at once instead of at its next tick. It never blocks.
func (b *Board) Report(component string) {
	b.mu.RLock()
	pid := b.pids[component]
	b.mu.RUnlock()
	if pid != nil {
		b.root.Send(pid, checkNow{})
	}
}

func (b *Board) set(s Status) {
	b.mu.Lock()
	b.statuses[s.Component] = s
	b.mu.Unlock()
}

type checkNow struct{}
type checkDone struct {
	latency time.Duration
	err     error
}

// Start spawns the supervisor tree in system and returns its Board. The tree
// stops with the actor system, or earlier with Stop on the returned PID.
func Start(system *actor.ActorSystem, cfg Config) (*Board, *actor.PID, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Backoff.Base <= 0 {
		cfg.Backoff.Base = 200 * time.Millisecond
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Board{statuses: map[string]Status{}, pids: map[string]*actor.PID{}, root: system.Root}
	// The root restarts a monitor that panics, at most 10 times a minute;
	// past that the monitor stays stopped and its status says so.
	strategy := actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)
	props := actor.PropsFromProducer(func() actor.Actor { return &root{cfg: cfg, board: b} }, actor.WithSupervisor(strategy))
	pid, err := system.Root.SpawnNamed(props, "supervisor")
	if err != nil {
		return nil, nil, err
	}
	// Wait until the monitors exist so that Report works at once.
	if _, err := system.Root.RequestFuture(pid, ping{}, 5*time.Second).Result(); err != nil {
		return nil, nil, err
	}
	return b, pid, nil
}

type ping struct{}

type root struct {
	cfg   Config
	board *Board
}

func (r *root) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		names := make([]string, 0, len(r.cfg.Checks))
		for name := range r.cfg.Checks {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			m := &monitorActor{name: name, check: r.cfg.Checks[name], cfg: r.cfg, board: r.board}
			pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return m }), name)
			if err != nil {
				r.cfg.Logger.Error("spawn monitor", slog.String("component", name), slog.Any("error", err))
				continue
			}
			r.board.mu.Lock()
			r.board.pids[name] = pid
			r.board.mu.Unlock()
			r.board.set(Status{Component: name, Up: true, Since: r.cfg.Now()})
		}
	case ping:
		ctx.Respond(ping{})
	}
}

// monitorActor runs one Monitor: checks happen off the mailbox (in a
// goroutine bounded by the check timeout) and their outcome comes back as a
// message, so a slow dependency never blocks the actor.
type monitorActor struct {
	name     string
	check    Check
	cfg      Config
	board    *Board
	mon      *Monitor
	timer    scheduler.CancelFunc
	checking bool
	again    bool
}

func (m *monitorActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.mon = NewMonitor(m.name, m.cfg.Now(), m.cfg.Interval, m.cfg.Backoff)
		m.startCheck(ctx)
	case checkNow:
		m.startCheck(ctx)
	case checkDone:
		m.checking = false
		changed, next := m.mon.Record(m.cfg.Now(), msg.latency, msg.err)
		st := m.mon.Status()
		m.board.set(st)
		if changed {
			ctx.ActorSystem().EventStream.Publish(&StatusChanged{Status: st})
			if st.Up {
				m.cfg.Logger.Info("dependency recovered", slog.String("component", m.name), slog.Duration("latency", st.Latency))
			} else {
				m.cfg.Logger.Warn("dependency down", slog.String("component", m.name), slog.String("error", st.LastError))
			}
		}
		if m.again {
			m.again = false
			next = 0
		}
		m.schedule(ctx, next)
	case *actor.Stopping:
		if m.timer != nil {
			m.timer()
		}
	}
}

func (m *monitorActor) schedule(ctx actor.Context, d time.Duration) {
	if m.timer != nil {
		m.timer()
	}
	m.timer = scheduler.NewTimerScheduler(ctx).SendOnce(max(d, time.Millisecond), ctx.Self(), checkNow{})
}

func (m *monitorActor) startCheck(ctx actor.Context) {
	if m.checking {
		m.again = true
		return
	}
	m.checking = true
	self, system, check, timeout := ctx.Self(), ctx.ActorSystem(), m.check, m.cfg.Timeout
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		err := check(c)
		system.Root.Send(self, checkDone{latency: time.Since(start), err: err})
	}()
}
