// Package order is the pure domain core of an order: the state machine
// (Decide: state + command -> events or error; Evolve: state + event ->
// state), validation with messages that name the field and the value, and
// money in integer cents. It has no actor, I/O or protobuf types, so it is
// tested (and fuzzed) on its own.
package order
