// Command loadgen drives load against an OrderSystem node (or several) over
// its HTTP API and reports throughput, latency percentiles, status codes and
// errors per scenario. Run "loadgen -h" for the flags; see package loadgen
// for what each scenario sends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ordersystem/ordersystem/internal/loadgen"
)

// options is the parsed command line.
type options struct {
	cfg        loadgen.Config
	scenarios  []string // one, or several with -compare
	json       bool
	cpuProfile string // file for a CPU profile of the generator
	slow       int    // slow-body connections held open during the run
	slowEvery  time.Duration
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// parseFlags parses and validates the command line; usage and flag errors
// go to stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	def := loadgen.DefaultConfig()
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadgen [flags]\n\nSends load to the OrderSystem HTTP API and reports throughput and latency.\nScenarios: %s.\n\nFlags:\n", strings.Join(loadgen.Scenarios, ", "))
		fs.PrintDefaults()
	}
	var (
		opts    options
		targets = fs.String("targets", strings.Join(def.Targets, ","), "comma-separated base URLs; requests go round-robin over them")
		mix     = fs.String("mix", loadgen.DefaultMix, "operation weights of the mix scenario (live, ready, create, read, pay, ship, deliver, cancel, history, list, stats)")
		compare = fs.String("compare", "", "comma-separated scenarios to run one after another, printing throughput ratios against the first (overrides -scenario)")
	)
	cfg := def
	fs.StringVar(&cfg.Scenario, "scenario", def.Scenario, "scenario: "+strings.Join(loadgen.Scenarios, ", "))
	fs.IntVar(&cfg.Concurrency, "concurrency", def.Concurrency, "closed loop: number of workers; open loop (-rate): maximum requests in flight")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second (open loop); 0 = closed loop at -concurrency")
	fs.DurationVar(&cfg.Duration, "duration", def.Duration, "length of each scenario's measured phase (at most "+loadgen.MaxDuration.String()+")")
	fs.Uint64Var(&cfg.MaxRequests, "requests", 0, "stop a scenario after this many requests (0 = only -duration)")
	fs.DurationVar(&cfg.Timeout, "timeout", def.Timeout, "per-request timeout")
	fs.IntVar(&cfg.Pool, "pool", def.Pool, "orders created in the warm-up of read, history and mix")
	fs.IntVar(&cfg.ListLimit, "limit", def.ListLimit, "?limit= of GET /orders (list)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token for the Authorization header (default $ORDERSYSTEM_API_TOKEN)")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	fs.StringVar(&cfg.Route, "route", def.Route, "read and history with 2+ cluster targets: send each read to the order's owner (owner), to another node (other, the target after the owner's), or round-robin (any)")
	fs.BoolVar(&opts.json, "json", false, "print the report as JSON")
	fs.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the generator to this file")
	fs.IntVar(&opts.slow, "slow-clients", 0, "hold this many slow-body connections (a POST /orders body sent one byte at a time) open to the first target during the run (at most 10000)")
	fs.DurationVar(&opts.slowEvery, "slow-every", time.Second, "pause between two bytes of a slow client's body")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if !flagSet(fs, "token") {
		cfg.Token = getenv("ORDERSYSTEM_API_TOKEN")
	}
	cfg.Targets = splitList(*targets)
	m, err := loadgen.ParseMix(*mix)
	if err != nil {
		return opts, err
	}
	cfg.Mix = m

	opts.scenarios = []string{cfg.Scenario}
	if *compare != "" {
		opts.scenarios = splitList(*compare)
		if len(opts.scenarios) < 2 {
			return opts, fmt.Errorf("-compare %q: want at least two scenarios, such as live,create,read", *compare)
		}
	}
	for _, s := range opts.scenarios {
		c := cfg
		c.Scenario = s
		if err := c.Validate(); err != nil {
			return opts, err
		}
	}
	if opts.slow < 0 || opts.slow > 10_000 {
		return opts, fmt.Errorf("-slow-clients %d: must be 0 to 10000", opts.slow)
	}
	if opts.slowEvery <= 0 {
		return opts, fmt.Errorf("-slow-every %v: must be positive", opts.slowEvery)
	}
	opts.cfg = cfg
	return opts, nil
}

// getenv is os.Getenv, replaceable in tests.
var getenv = os.Getenv

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// run runs each scenario in turn, prints the reports and returns an error
// wrapping loadgen.ErrNoSuccess when a scenario had no successful request.
func run(ctx context.Context, opts options, stdout io.Writer) error {
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if opts.slow > 0 {
		stopSlow, err := loadgen.SlowClients(ctx, opts.cfg.Targets[0], opts.slow, opts.slowEvery)
		if err != nil {
			return err
		}
		defer func() { fmt.Fprintln(stdout, stopSlow()) }()
	}
	var reports []loadgen.Report
	for _, s := range opts.scenarios {
		if ctx.Err() != nil {
			break
		}
		cfg := opts.cfg
		cfg.Scenario = s
		rep, err := loadgen.Run(ctx, cfg)
		if err != nil {
			return err
		}
		reports = append(reports, rep)
	}
	var err error
	if opts.json {
		err = loadgen.WriteJSON(stdout, reports)
	} else {
		err = loadgen.WriteText(stdout, reports)
	}
	if err != nil {
		return err
	}
	return loadgen.CheckSuccess(reports)
}
