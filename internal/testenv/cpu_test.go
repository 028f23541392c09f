package testenv

import (
	"os"
	"testing"
	"time"
)

// TestParseStat: the command name may hold spaces and parentheses; the
// parent and the user and system time follow the last ')'.
func TestParseStat(t *testing.T) {
	const rest = " S 42 7 7 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 5 0 0"
	tests := []struct {
		name, stat string
		want       procStat
		ok         bool
	}{
		{"plain", "123 (postgres)" + rest, procStat{comm: "postgres", ppid: 42, cpu: 2800 * time.Millisecond}, true},
		{"space and parens", "9 (a) b (c))" + rest, procStat{comm: "a) b (c)", ppid: 42, cpu: 2800 * time.Millisecond}, true},
		{"truncated", "9 (postgres) S 42", procStat{}, false},
		{"no name", "9 postgres" + rest, procStat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseStat([]byte(tt.stat))
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseStat = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestCPUNowSelf: this process's own reading names it and its parent, and
// grows as it works.
func TestCPUNowSelf(t *testing.T) {
	st, ok := readStat(os.Getpid())
	if !ok || st.ppid != os.Getppid() || st.comm == "" {
		t.Fatalf("readStat(self) = %+v, %v; want parent %d and a name", st, ok, os.Getppid())
	}
	before := CPUNow()
	for deadline := time.Now().Add(5 * time.Second); CPUNow().Self-before.Self < 20*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("this process's time did not grow in 5 s of work")
		}
	}
}
