// Package drill runs failure drills against a real OrderSystem cluster of
// processes: it drives a workload through every node, records each client
// operation (invoke, result, time) and checks the histories Jepsen style
// with a linearizability checker (porcupine), over a per-order register of
// status and version: an acknowledged write that disappears, or two writers
// that both won, fails the drill. It also reads every order's journal
// history back and checks it is gap-free and a valid path of the state
// machine.
package drill
