package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchstatCSV is `benchstat -format csv` output for two benchmarks.
const benchstatCSV = `,ledger.txt,
,sec/op,CI
Append/postgres/clients1-2,0.005,3%
Append/postgres/clients8-2,0.0016,8%
geomean,0.003,

,ledger.txt,
,appends/s,CI
Append/postgres/clients1-2,180.5,3%
Append/postgres/clients8-2,640,8%
Append/sqlite/clients1-2,80,1%
geomean,300,

,ledger.txt,
,x-baseline,CI
Append/postgres/clients1-2,0.77,5%
Append/postgres/clients8-2,0.9,∞
geomean,0.8,
`

func TestParseBenchstatCSV(t *testing.T) {
	got, err := parseBenchstatCSV(strings.NewReader(benchstatCSV))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		bench, unit string
		want        stat
	}{
		{"Append/postgres/clients1", "appends/s", stat{180.5, "3%"}},
		{"Append/postgres/clients8", "x-baseline", stat{0.9, "∞"}},
		{"Append/postgres/clients1", "sec/op", stat{0.005, "3%"}},
	}
	for _, tt := range tests {
		if s := got[tt.bench][tt.unit]; s != tt.want {
			t.Errorf("%s %s = %+v, want %+v", tt.bench, tt.unit, s, tt.want)
		}
	}
	if _, ok := got["geomean"]; ok {
		t.Errorf("geomean parsed as a benchmark")
	}
}

func TestGoalCheck(t *testing.T) {
	stats, err := parseBenchstatCSV(strings.NewReader(benchstatCSV))
	if err != nil {
		t.Fatal(err)
	}
	gs := []group{{name: "ledger", stats: stats}}
	tests := []struct {
		name          string
		g             goal
		bench         string
		met, measured bool
	}{
		{"ratio met", goal{unit: "x-baseline", op: ">=", value: 0.5}, "Append/postgres/clients1", true, true},
		{"absolute missed", goal{unit: "appends/s", op: ">=", value: 10000}, "Append/postgres/clients8", false, true},
		{"relative to another benchmark, missed", goal{unit: "appends/s", op: ">=", value: 0.5,
			of: [2]string{"Append/postgres/clients1", "appends/s"}}, "Append/sqlite/clients1", false, true},
		{"relative, met", goal{unit: "appends/s", op: ">=", value: 0.4,
			of: [2]string{"Append/postgres/clients1", "appends/s"}}, "Append/sqlite/clients1", true, true},
		{"equality", goal{unit: "x-baseline", op: "==", value: 0.9}, "Append/postgres/clients8", true, true},
		{"not run", goal{unit: "appends/s", op: ">=", value: 1}, "Append/sqlite/clients8", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			met, measured, detail := tt.g.check(gs, tt.bench)
			if met != tt.met || measured != tt.measured {
				t.Fatalf("check = met %v measured %v (%s), want %v %v", met, measured, detail, tt.met, tt.measured)
			}
		})
	}
}

func TestRunRewritesOnlyTheSections(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	write("ledger.csv", benchstatCSV)
	// The capacity benchmark's rss-MB, as benchstat reports it.
	write("capacity.csv", ",capacity.txt,\n,rss-B,CI\nCapacity/dev-2,2.255e+08,∞\n\n,capacity.txt,\n,approve-p99-ms,CI\nCapacity/dev-2,281.8,∞\n\n,capacity.txt,\n,waiting,CI\nCapacity/dev-2,1000,∞\n")
	write("capacity.txt", "date: 2026-12-06 03:22\nload: 1.0 1.0 1.0\nmachine: 2 cores\ncpu: Test CPU\nBenchmarkCapacity/dev-2 1 1 ns/op\n")
	write("ledger.txt", "date: 2026-12-05 14:00\nload: 1.0 2.0 3.0\nmachine: 2 cores\ncpu: Test CPU\nBenchmarkAppend/postgres/clients1-2 1 1 ns/op\n")
	doc := filepath.Join(dir, "PERFORMANCE.md")
	write("PERFORMANCE.md", "intro\n<!-- benchtable:machine -->\nold machine\n<!-- /benchtable:machine -->\nmiddle\n<!-- benchtable:results -->\nold\n<!-- /benchtable:results -->\nend\n")
	if err := run(dir, doc); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(doc)
	out := string(b)
	containsAll(t, out,
		"intro\n", "\nmiddle\n", "\nend\n",
		"| ledger | 2026-12-05 14:00 | 2 cores | Test CPU | 1.0 2.0 3.0 |",
		"| Ledger | one chain, PostgreSQL (`Append/postgres/clients1`) | **180 appends/s ± 3%** |",
		"yes (0.77 x-baseline)",
		"**no** (640 appends/s)",
		"**226 rss-MB ± ∞**",
		"**no** (1,000 waiting); yes (226 rss-MB); **no** (282 approve-p99-ms)",
	)
	if strings.Contains(out, "old machine") || strings.Contains(out, "\nold\n") {
		t.Errorf("old tables left:\n%s", out)
	}
	write("bad.md", "no markers\n")
	if err := run(dir, filepath.Join(dir, "bad.md")); err == nil {
		t.Errorf("a document without markers was accepted")
	}
}

// A run that holds only some groups (BENCH_GROUPS on a fresh clone) keeps
// the other groups' rows of the document, marking kept results rows once,
// and replaces the rows of the groups it ran.
func TestRunKeepsGroupsItDidNotRun(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	write("ledger.csv", benchstatCSV)
	write("ledger.txt", "date: 2026-12-07 11:00\nload: 1.0 2.0 3.0\nmachine: 2 cores\ncpu: New CPU\nBenchmarkAppend/postgres/clients1-2 1 1 ns/op\n")
	doc := filepath.Join(dir, "PERFORMANCE.md")
	write("PERFORMANCE.md", `intro
<!-- benchtable:machine -->
| Group | Run at (UTC) | Machine | CPU | Load average at start |
|---|---|---|---|---|
| evidence | 2026-12-01 05:39 | 2 cores | Old CPU | 2.37 2.11 2.03 |
| ledger | 2026-12-01 05:36 | 2 cores | Old CPU | 1.30 1.98 1.98 |
<!-- /benchtable:machine -->
<!-- benchtable:results -->
| Area | Benchmark | Figure | Baseline (same run) | Ratio | Goal | Met |
|---|---|---|---|---|---|---|
| Ledger | one chain, PostgreSQL (`+"`Append/postgres/clients1`"+`) | **3,120 appends/s ± 13%** | 5,178 baseline-inserts/s ± 8% | 0.58× | ≥ 0.5× | yes (0.58 x-baseline) |
| Evidence | put, 100 MB (`+"`Locker100MB/put`"+`) | **765 MB/s ± 63%** | 619 baseline-MB/s ± 27% | 1.21× | ≥ 0.85× | yes (1.21 x-baseline) |
| Evidence | get, 100 MB (`+"`Locker100MB/get`"+`) | not measured | — | — | ≥ 0.8× | — (not measured) |

Every other benchmark, every metric (benchstat center ± 95 % confidence interval):

| Group | Benchmark | Metrics |
|---|---|---|
| codec | `+"`Codec/1KiB`"+` | 5.12 µs/op ± 8% |
| ledger | `+"`Old/gone`"+` | 1 µs/op |
<!-- /benchtable:results -->
end
`)
	for range 2 { // the second run reads what the first wrote
		if err := run(dir, doc); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(doc)
	out := string(b)
	containsAll(t, out,
		"| evidence | 2026-12-01 05:39 | 2 cores | Old CPU | 2.37 2.11 2.03 |",
		"| ledger | 2026-12-07 11:00 | 2 cores | New CPU | 1.0 2.0 3.0 |",
		"| Evidence | put, 100 MB (`Locker100MB/put`) † | **765 MB/s ± 63%** |",
		"| Ledger | one chain, PostgreSQL (`Append/postgres/clients1`) | **180 appends/s ± 3%** |",
		"| Evidence | get, 100 MB (`Locker100MB/get`) | not measured |",
		"† Kept from an earlier run",
		"| codec | `Codec/1KiB` | 5.12 µs/op ± 8% |",
	)
	for _, stale := range []string{"Old CPU | 1.30", "3,120 appends/s", "`Old/gone`", "† †"} {
		if strings.Contains(out, stale) {
			t.Errorf("document still holds %q:\n%s", stale, out)
		}
	}
}

// writer returns a function that writes a file of dir or fails t.
func writer(t *testing.T, dir string) func(name, content string) {
	return func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// containsAll fails t for each of wants that the document out lacks.
func containsAll(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("document lacks %q:\n%s", want, out)
		}
	}
}
