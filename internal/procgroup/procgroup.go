// Package procgroup runs a server binary (the Temporal dev server and
// server, MinIO) as a child in its own process group: a stop reaches the
// children it starts, and a Ctrl-C in the terminal is handled by the
// parent, not by the child.
package procgroup

import (
	"io"
	"os/exec"
	"syscall"
	"time"
)

// Process is a started child and its process group.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd in its own process group with its output to log (nil:
// discarded).
func Start(cmd *exec.Cmd, log io.Writer) (*Process, error) {
	if log == nil {
		log = io.Discard
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop sends sig to the process group and waits for the process to exit,
// killing the group after grace. A nil Process is stopped already.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
