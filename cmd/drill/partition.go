package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ordersystem/ordersystem/internal/drill"
)

// cuts is the flag of -drill partition (run as root: network namespaces
// and iptables):
//
//	go run ./cmd/drill -drill partition -cuts 10s,40s -load 5s -workers 12
var cuts = flag.String("cuts", "10s,40s", "-drill partition (as root): how long each round cuts the node-to-node port of one member, "+
	"comma-separated, one round each (0: a control round without a cut)")

// partition runs the partition drill, one round per duration of -cuts.
func partition(backend, bin string, opts drill.Options) error {
	if backend != "redis" {
		return fmt.Errorf("-drill=partition runs on a private Redis only, not -backend=%s", backend)
	}
	var holds []time.Duration
	for _, c := range strings.Split(*cuts, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(c))
		if err != nil || d < 0 {
			return fmt.Errorf("-cuts=%s: %q is not a duration (0: a control round without a cut)", *cuts, c)
		}
		holds = append(holds, d)
	}
	dir, err := os.MkdirTemp("", "ordersystem-drill")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if opts.Binary, err = goBuild(bin, dir, "ordersystem", "./cmd/ordersystem"); err != nil {
		return err
	}
	reps, err := drill.Partition(opts, dir, holds)
	failed := false
	for _, rep := range reps {
		fmt.Println(rep)
		failed = failed || !rep.OK()
	}
	if err != nil {
		return err
	}
	if failed {
		return fmt.Errorf("the partition drill failed")
	}
	return nil
}
