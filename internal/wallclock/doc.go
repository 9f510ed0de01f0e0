// Package wallclock is the wall clock a node dates what other members read
// by (event timestamps, member records, node-to-node tokens), and its test
// hook: OffsetFile moves that clock by an offset a test writes into a file,
// so that a drill can step one member's wall clock (cmd/drill -drill
// clock-step) without touching the machine's clock. It cannot move the
// clock of libraries that call time.Now themselves (protoactor's gossip
// heartbeats among them).
package wallclock
