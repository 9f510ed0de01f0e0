// Package transporttest is the contract suite every transport backend must
// pass (in the spirit of watermill's tests.TestPubSub): call Run from the
// backend's own tests with a factory that returns a fresh transport whose
// stream no other test uses, and RunRestart with a transport on a private
// server that the test can restart.
//
// The suite polls with deadlines instead of sleeping, checks payloads byte for
// byte, and is strict about duplicates except where Features says the
// backend may deliver them.
package transporttest
