package testservers

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel SIGKILL the server when the process that
// started it dies (a test binary that panics on -timeout runs no Cleanup).
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
