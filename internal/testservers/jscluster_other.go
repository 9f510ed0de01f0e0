//go:build !linux

package testservers

import "os/exec"

// killWithParent does nothing outside Linux: a test binary killed by
// -timeout may leave its servers running there.
func killWithParent(*exec.Cmd) {}
