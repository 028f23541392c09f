package pve

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	proxmox "github.com/luthermonson/go-proxmox"
)

// BenchmarkStatusGET measures GET status/current round trips through
// go-proxmox over HTTPS on loopback (parallel clients).
func BenchmarkStatusGET(b *testing.B) {
	s := startSim(b, Options{})
	c := responder(s)
	ctx := context.Background()
	ct, err := (&proxmox.Node{}).New(c, "pve1").Container(ctx, 100)
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := *ct
		for pb.Next() {
			if err := local.Ping(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkSnapshotTasks measures snapshot creation (POST + status poll)
// with instant tasks.
func BenchmarkSnapshotTasks(b *testing.B) {
	s := startSim(b, Options{TaskDuration: InstantTasks})
	c := responder(s)
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			vmid := []int{100, 101, 900}[n%3]
			var upid proxmox.UPID
			if err := c.Post(ctx, fmt.Sprintf("/nodes/pve1/lxc/%d/snapshot", vmid), map[string]any{"snapname": fmt.Sprintf("b%d", n)}, &upid); err != nil {
				b.Error(err)
				return
			}
			task := proxmox.NewTask(upid, c)
			if err := task.Ping(ctx); err != nil || task.Status != "stopped" {
				b.Errorf("task %s: %v %s", upid, err, task.Status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
