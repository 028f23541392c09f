package procgroup

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestStop: a stop reaches the child's own children (the process group),
// and a group that ignores the signal is killed after the grace period.
func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		script string
		grace  time.Duration
	}{
		{"exits on the signal", "sleep 30 & wait", 10 * time.Second},
		{"ignores the signal", `trap "" TERM; sleep 30 & wait`, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(exec.Command("sh", "-c", tt.script), nil)
			if err != nil {
				t.Fatal(err)
			}
			pgid := p.cmd.Process.Pid
			time.Sleep(100 * time.Millisecond) // the shell starts its sleep
			start := time.Now()
			p.Stop(syscall.SIGTERM, tt.grace)
			if d := time.Since(start); d > tt.grace+5*time.Second {
				t.Errorf("stop took %s", d)
			}
			select {
			case <-p.Exited():
			default:
				t.Fatal("Stop returned before the process exited")
			}
			// Nothing of the group is left: signal 0 to it fails.
			deadline := time.Now().Add(2 * time.Second)
			for syscall.Kill(-pgid, 0) == nil {
				if time.Now().After(deadline) {
					t.Fatal("the child's children survived the stop")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	var none *Process
	none.Stop(syscall.SIGTERM, time.Second) // stopped already: no panic
}
