// Command benchtable rewrites the generated tables of docs/PERFORMANCE.md
// from the results of scripts/bench.sh.
//
//	go run ./scripts/benchtable -dir .bench -doc docs/PERFORMANCE.md
//
// The directory holds, per benchmark group NAME, the raw `go test -bench`
// output NAME.txt (with the "date:", "load:" and "machine:" lines bench.sh
// writes first) and benchstat's CSV summary of it, NAME.csv. Every figure
// in the tables is benchstat's center (the median) with its 95 %
// confidence interval. Each known benchmark row names its baseline from the
// same run and its goal, and says whether the goal is met; the metrics of
// every other benchmark are listed below them. The tables replace what lies
// between the markers <!-- benchtable:NAME --> and <!-- /benchtable:NAME -->
// (NAME is machine or results); the rest of the document is left as it is.
// A group the directory does not hold (BENCH_GROUPS ran others, on a clone
// without the earlier .bench) keeps its rows of the document's tables, and
// a results row kept so is marked † (see the machine table for when its
// group ran).
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	dir := flag.String("dir", ".bench", "folder with the NAME.txt and NAME.csv files of scripts/bench.sh")
	doc := flag.String("doc", "docs/PERFORMANCE.md", "document whose generated tables are rewritten")
	flag.Parse()
	if err := run(*dir, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(dir, doc string) error {
	groups, err := loadGroups(dir)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return fmt.Errorf("no results in %s: run scripts/bench.sh first", dir)
	}
	text, err := os.ReadFile(doc)
	if err != nil {
		return fmt.Errorf("read %s: %w", doc, err)
	}
	prev := parsePrevious(string(text))
	out, err := replaceSection(string(text), "machine", machineTable(groups, prev))
	if err != nil {
		return err
	}
	if out, err = replaceSection(out, "results", resultTables(groups, prev)); err != nil {
		return err
	}
	if err := os.WriteFile(doc, []byte(out), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", doc, err)
	}
	return nil
}

// stat is benchstat's summary of one metric: center (median) and the
// confidence interval as benchstat prints it ("± 3%", "± ∞" with too few runs).
type stat struct {
	center float64
	ci     string
}

// group is the results of one benchmark group (one NAME.txt).
type group struct {
	name   string
	header map[string]string          // date, load, machine, cpu, goos, ...
	stats  map[string]map[string]stat // benchmark → unit → stat
}

func loadGroups(dir string) ([]group, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var gs []group
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".csv")
		g := group{name: name}
		raw, err := os.ReadFile(filepath.Join(dir, name+".txt"))
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", name, err)
		}
		g.header = parseHeader(raw)
		c, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		g.stats, err = parseBenchstatCSV(c)
		_ = c.Close()
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", name, err)
		}
		gs = append(gs, g)
	}
	return gs, nil
}

var headerRE = regexp.MustCompile(`^([a-z]+): (.+)$`)

// parseHeader returns the "key: value" lines of go test output.
func parseHeader(raw []byte) map[string]string {
	h := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if m := headerRE.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			if _, seen := h[m[1]]; !seen {
				h[m[1]] = strings.TrimSpace(m[2])
			}
		}
	}
	return h
}

// gomaxprocsRE is the -N suffix go test adds to benchmark names.
var gomaxprocsRE = regexp.MustCompile(`-\d+$`)

// parseBenchstatCSV reads `benchstat -format csv` output: blocks separated
// by blank lines, each with a file row, a ",unit,CI" row, benchmark rows
// and a geomean row.
func parseBenchstatCSV(r io.Reader) (map[string]map[string]stat, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	out := map[string]map[string]stat{}
	unit := ""
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("benchstat csv: %w", err)
		}
		switch {
		case len(rec) < 2:
		case rec[0] == "" && len(rec) >= 3 && rec[2] == "CI":
			unit = rec[1]
		case rec[0] == "" || rec[0] == "geomean" || unit == "":
		default:
			v, err := strconv.ParseFloat(rec[1], 64)
			if err != nil {
				continue
			}
			name := gomaxprocsRE.ReplaceAllString(rec[0], "")
			if out[name] == nil {
				out[name] = map[string]stat{}
			}
			ci := ""
			if len(rec) > 2 {
				ci = rec[2]
			}
			out[name][unit] = stat{center: v, ci: ci}
		}
	}
}

// lookup finds benchmark bench's unit in any group.
func lookup(gs []group, bench, unit string) (stat, bool) {
	for _, g := range gs {
		if s, ok := g.stats[bench][unit]; ok {
			return s, true
		}
	}
	return stat{}, false
}

// goal is what a row's figure must reach: unit op value, or, with of set,
// unit op value × of's metric (another benchmark of the same run).
type goal struct {
	unit  string
	op    string // ">=", "<=", "=="
	value float64
	of    [2]string // benchmark, unit
	text  string
}

// spec is one row of the results table.
type spec struct {
	section  string
	title    string
	bench    string // benchstat name without the -N suffix
	figure   string // unit of the main figure
	baseline string // unit of the baseline measured in the same run, if any
	ratio    string // unit of figure ÷ baseline, if any
	goals    []goal
}

// The goals of the benchmarks that have a row per target.
var (
	largeStormGoals = []goal{
		{unit: "incidents", op: "==", value: 1000, text: "exactly 1,000 incidents"},
		{unit: "alerts-lost", op: "==", value: 0, text: "0 lost"},
	}
	// benchstat reports the backlog benchmark's rss-MB (10^6 bytes) as rss-B.
	backlogGoals = []goal{
		{unit: "waiting", op: ">=", value: 10000, text: "10,000 waiting"},
		{unit: "rss-B", op: "<=", value: 1e9, text: "< 1 GB RSS"},
		{unit: "approve-p99-ms", op: "<=", value: 250, text: "approval to effect p99 < 250 ms"},
	}
)

var specs = []spec{
	{"Ledger", "one chain, PostgreSQL", "Append/postgres/clients1", "appends/s", "baseline-inserts/s", "x-baseline",
		[]goal{{unit: "x-baseline", op: ">=", value: 0.5, text: "≥ 0.5× plain single-row insert, 1 client"}}},
	{"Ledger", "8 chains in parallel, PostgreSQL", "Append/postgres/clients8", "appends/s", "baseline-inserts/s", "x-baseline",
		[]goal{{unit: "appends/s", op: ">=", value: 10000, text: "≥ 10,000 appends/s"}}},
	{"Ledger", "8 chains in parallel, 64 appends in flight per chain (AppendAsync), PostgreSQL", "Append/postgres/clients8-pipeline64", "appends/s", "baseline-inserts/s", "x-baseline",
		[]goal{{unit: "appends/s", op: ">=", value: 10000, text: "≥ 10,000 appends/s"}}},
	{"Ledger", "one chain, SQLite", "Append/sqlite/clients1", "appends/s", "", "",
		[]goal{{unit: "appends/s", op: ">=", value: 0.5, of: [2]string{"Append/postgres/clients1", "appends/s"}, text: "within 2× of PostgreSQL (≥ 0.5×)"}}},
	{"Ledger", "8 chains in parallel, SQLite", "Append/sqlite/clients8", "appends/s", "", "",
		[]goal{{unit: "appends/s", op: ">=", value: 0.5, of: [2]string{"Append/postgres/clients8", "appends/s"}, text: "within 2× of PostgreSQL (≥ 0.5×)"}}},
	{"Ledger", "8 chains, 64 in flight per chain, SQLite", "Append/sqlite/clients8-pipeline64", "appends/s", "", "",
		[]goal{{unit: "appends/s", op: ">=", value: 0.5, of: [2]string{"Append/postgres/clients8-pipeline64", "appends/s"}, text: "within 2× of PostgreSQL (≥ 0.5×)"}}},
	{"Contain", "isolation of one container, +30 ms per API call, security group", "IsolateLatency/group", "calls/op", "", "",
		[]goal{{unit: "calls/op", op: "<=", value: 8, text: "isolation in at most 8 API calls"}}},
	{"Evidence", "put, 100 MB", "Locker100MB/put", "B/s", "baseline-B/s", "x-baseline",
		[]goal{
			{unit: "x-baseline", op: ">=", value: 0.85, text: "≥ 0.85× plain file write"},
			{unit: "peak-heap-KiB", op: "<=", value: 2, of: [2]string{"Locker100MB/put", "peak-heap-10MB-KiB"}, text: "peak heap at 100 MB ≤ 2× at 10 MB"},
		}},
	{"Evidence", "get, 100 MB", "Locker100MB/get", "B/s", "baseline-B/s", "x-baseline",
		[]goal{
			{unit: "x-baseline", op: ">=", value: 0.8, text: "≥ 0.8× SHA-256"},
			{unit: "peak-heap-KiB", op: "<=", value: 2, of: [2]string{"Locker100MB/get", "peak-heap-10MB-KiB"}, text: "peak heap at 100 MB ≤ 2× at 10 MB"},
		}},
	{"Alert storm", "10,000 alerts, 100 assets, dev server: accepted", "AlertStorm/dev", "accepted/s", "noop-accepted/s", "accepted/noop",
		[]goal{
			{unit: "accepted/s", op: ">=", value: 6000, text: "≥ 6,000 accepted/s"},
			{unit: "incidents", op: "==", value: 100, text: "exactly 100 incidents"},
			{unit: "alerts-lost", op: "==", value: 0, text: "0 lost"},
		}},
	// The floor: Temporal alone putting the same alerts into workflows
	// that only count them, in the same run (test/bench/floor_test.go).
	{"Alert storm", "10,000 alerts, 100 assets, dev server: into incidents", "AlertStorm/dev", "in-incidents/s", "floor-in-incidents/s", "in-incidents/floor",
		[]goal{{unit: "in-incidents/s", op: ">=", value: 4000, text: "≥ 4,000 alerts/s into incidents"}}},
	{"Alert storm", "100,000 alerts, 1,000 assets, dev server", "AlertStormLarge/dev", "accepted/s", "noop-accepted/s", "accepted/noop",
		largeStormGoals},
	{"Alert storm", "100,000 alerts, 1,000 assets, cluster", "AlertStormLarge/cluster", "accepted/s", "noop-accepted/s", "accepted/noop",
		largeStormGoals},
	{"Backlog", "incidents waiting for approval on one worker (IRU_CAPACITY_N), dev server", "Capacity/dev", "rss-B", "", "",
		backlogGoals},
	{"Backlog", "incidents waiting for approval on one worker (IRU_CAPACITY_N), cluster", "Capacity/cluster", "rss-B", "", "",
		backlogGoals},
	{"Backlog", "list 10,000 incidents in one page through the API, dev server", "ListIncidents/dev", "api-ms/list", "visibility-ms/list", "api/visibility",
		[]goal{{unit: "api-ms/list", op: "<=", value: 1000, text: "< 1 s"}}},
	{"Backlog", "list 10,000 incidents in one page through the API, cluster", "ListIncidents/cluster", "api-ms/list", "visibility-ms/list", "api/visibility",
		[]goal{{unit: "api-ms/list", op: "<=", value: 1000, text: "< 1 s"}}},
	{"Alert storm", "10,000 alerts, 100 assets, cluster: accepted", "AlertStorm/cluster", "accepted/s", "noop-accepted/s", "accepted/noop",
		[]goal{
			{unit: "accepted/s", op: ">=", value: 6000, text: "≥ 6,000 accepted/s"},
			{unit: "incidents", op: "==", value: 100, text: "exactly 100 incidents"},
			{unit: "alerts-lost", op: "==", value: 0, text: "0 lost"},
		}},
	// The floor: Temporal alone putting the same alerts into workflows
	// that only count them, in the same run (test/bench/floor_test.go).
	{"Alert storm", "10,000 alerts, 100 assets, cluster: into incidents", "AlertStorm/cluster", "in-incidents/s", "floor-in-incidents/s", "in-incidents/floor",
		[]goal{{unit: "in-incidents/s", op: ">=", value: 4000, text: "≥ 4,000 alerts/s into incidents"}}},
	{"Time to contain", "light load, dev server", "TimeToContain/dev/20-at-1per-s", "platform-p50-ms", "sequential-p50-ms", "p50-platform/sequential",
		[]goal{{unit: "platform-p50-ms", op: "<=", value: 250, text: "p50 ≤ 250 ms"}}},
	{"Time to contain", "ten a second, dev server", "TimeToContain/dev/100-at-10per-s", "platform-p99-ms", "sequential-p99-ms", "p99-platform/sequential",
		[]goal{{unit: "platform-p99-ms", op: "<=", value: 1.5, of: [2]string{"TimeToContain/dev/20-at-1per-s", "platform-p99-ms"}, text: "p99 ≤ 1.5× light-load p99"}}},
	{"Time to contain", "light load, cluster", "TimeToContain/cluster/20-at-1per-s", "platform-p50-ms", "sequential-p50-ms", "p50-platform/sequential",
		[]goal{{unit: "platform-p50-ms", op: "<=", value: 250, text: "p50 ≤ 250 ms"}}},
	{"Time to contain", "ten a second, cluster", "TimeToContain/cluster/100-at-10per-s", "platform-p99-ms", "sequential-p99-ms", "p99-platform/sequential",
		[]goal{{unit: "platform-p99-ms", op: "<=", value: 1.5, of: [2]string{"TimeToContain/cluster/20-at-1per-s", "platform-p99-ms"}, text: "p99 ≤ 1.5× light-load p99"}}},
}

// check evaluates g against the results; ok is false when a figure is missing.
func (g goal) check(gs []group, bench string) (met, ok bool, detail string) {
	s, found := lookup(gs, bench, g.unit)
	if !found {
		return false, false, "not measured"
	}
	limit := g.value
	if g.of[0] != "" {
		o, found := lookup(gs, g.of[0], g.of[1])
		if !found {
			return false, false, g.of[0] + " not measured"
		}
		limit = g.value * o.center
	}
	switch g.op {
	case ">=":
		met = s.center >= limit
	case "<=":
		met = s.center <= limit
	default:
		met = s.center == limit
	}
	if g.of[0] != "" {
		return met, true, fmt.Sprintf("%s vs limit %s", format(s.center, g.unit), format(limit, g.unit))
	}
	return met, true, format(s.center, g.unit)
}

// format renders a value of unit; B/s is shown in MB/s and NAME-B in
// NAME-MB (benchstat turns MB/s metrics into B/s and NAME-MB into NAME-B).
func format(v float64, unit string) string {
	switch {
	case strings.HasSuffix(unit, "B/s"):
		v, unit = v/1e6, strings.TrimSuffix(unit, "B/s")+"MB/s"
	case strings.HasSuffix(unit, "-B"):
		v, unit = v/1e6, strings.TrimSuffix(unit, "B")+"MB"
	case unit == "sec/op" && v < 1e-3:
		v, unit = v*1e6, "µs/op"
	case unit == "sec/op" && v < 1:
		v, unit = v*1e3, "ms/op"
	}
	var num string
	switch a := math.Abs(v); {
	case a >= 100:
		num = commas(strconv.FormatFloat(v, 'f', 0, 64))
	case a >= 10:
		num = strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.01 || a == 0:
		num = strconv.FormatFloat(v, 'f', 2, 64)
	default:
		num = strconv.FormatFloat(v, 'g', 3, 64)
	}
	if unit == "×" {
		return num + unit
	}
	return num + " " + unit
}

func commas(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func withCI(s stat, unit string) string {
	out := format(s.center, unit)
	if s.ci != "" {
		out += " ± " + s.ci
	}
	return out
}

// previous is what the document's generated tables held before this run,
// for the groups this run has no results of.
type previous struct {
	// machine is each group's row of the machine table.
	machine map[string]string
	// results is each benchmark's row of the results table, if it had a
	// figure.
	results map[string]string
	// others is each group's rows of the table of every other benchmark.
	others map[string][]string
}

// keptMark marks a results row kept from an earlier run.
const keptMark = " †"

// benchCellRE finds the benchmark name in a results row's second cell.
var benchCellRE = regexp.MustCompile("\\(`([^`]+)`\\)")

// parsePrevious reads the rows of doc's generated tables; a document
// without them gives none.
func parsePrevious(doc string) previous {
	p := previous{machine: map[string]string{}, results: map[string]string{}, others: map[string][]string{}}
	for _, row := range tableRows(section(doc, "machine")) {
		p.machine[cells(row)[0]] = row
	}
	results := section(doc, "results")
	main, rest, _ := strings.Cut(results, "Every other benchmark")
	for _, row := range tableRows(main) {
		c := cells(row)
		if len(c) < 3 || c[2] == "not measured" {
			continue
		}
		if m := benchCellRE.FindStringSubmatch(c[1]); m != nil {
			p.results[m[1]] = row
		}
	}
	for _, row := range tableRows(rest) {
		g := cells(row)[0]
		p.others[g] = append(p.others[g], row)
	}
	return p
}

// section returns the text between doc's markers of name ("" without them).
func section(doc, name string) string {
	_, after, ok := strings.Cut(doc, "<!-- benchtable:"+name+" -->")
	if !ok {
		return ""
	}
	body, _, _ := strings.Cut(after, "<!-- /benchtable:"+name+" -->")
	return body
}

// tableRows returns the body rows of the Markdown tables in text (not
// their header and separator rows).
func tableRows(text string) []string {
	var rows []string
	header := true
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		switch {
		case !strings.HasPrefix(line, "|"):
			header = true
		case header:
			header = !strings.HasPrefix(line, "|---")
		default:
			rows = append(rows, line)
		}
	}
	return rows
}

// cells splits a table row into its trimmed cells.
func cells(row string) []string {
	parts := strings.Split(strings.Trim(row, "|"), " | ")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func machineTable(gs []group, prev previous) string {
	rows := maps.Clone(prev.machine)
	for _, g := range gs {
		rows[g.name] = fmt.Sprintf("| %s | %s | %s | %s | %s |", g.name, dash(g.header["date"]), dash(g.header["machine"]),
			dash(g.header["cpu"]), dash(g.header["load"]))
	}
	var b strings.Builder
	b.WriteString("| Group | Run at (UTC) | Machine | CPU | Load average at start |\n|---|---|---|---|---|\n")
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		b.WriteString(rows[name] + "\n")
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return strings.ReplaceAll(s, "|", "/")
}

func resultTables(gs []group, prev previous) string {
	var b strings.Builder
	b.WriteString("| Area | Benchmark | Figure | Baseline (same run) | Ratio | Goal | Met |\n|---|---|---|---|---|---|---|\n")
	known := map[string]bool{}
	kept := false
	for _, s := range specs {
		known[s.bench] = true
		if _, ok := lookup(gs, s.bench, s.figure); !ok && prev.results[s.bench] != "" {
			b.WriteString(keptRow(prev.results[s.bench]) + "\n")
			kept = true
			continue
		}
		fig, base, ratio := "not measured", "—", "—"
		if v, ok := lookup(gs, s.bench, s.figure); ok {
			fig = "**" + withCI(v, s.figure) + "**"
		}
		if v, ok := lookup(gs, s.bench, s.baseline); ok && s.baseline != "" {
			base = withCI(v, s.baseline)
		}
		if v, ok := lookup(gs, s.bench, s.ratio); ok && s.ratio != "" {
			ratio = format(v.center, "×")
		}
		var goals, met []string
		for _, g := range s.goals {
			ok, measured, detail := g.check(gs, s.bench)
			goals = append(goals, g.text)
			switch {
			case !measured:
				met = append(met, "— ("+detail+")")
			case ok:
				met = append(met, "yes ("+detail+")")
			default:
				met = append(met, "**no** ("+detail+")")
			}
		}
		fmt.Fprintf(&b, "| %s | %s (`%s`) | %s | %s | %s | %s | %s |\n", s.section, s.title, s.bench, fig, base, ratio,
			strings.Join(goals, "; "), strings.Join(met, "; "))
	}
	if kept {
		b.WriteString("\n†" + " Kept from an earlier run: this run did not measure it (see the machine table for when its group ran).\n")
	}
	b.WriteString("\nEvery other benchmark, every metric (benchstat center ± 95 % confidence interval):\n\n")
	b.WriteString("| Group | Benchmark | Metrics |\n|---|---|---|\n")
	others := maps.Clone(prev.others)
	for _, g := range gs {
		others[g.name] = otherRows(g, known)
	}
	for _, name := range slices.Sorted(maps.Keys(others)) {
		for _, row := range others[name] {
			b.WriteString(row + "\n")
		}
	}
	return b.String()
}

// keptRow marks a results row kept from an earlier run (once).
func keptRow(row string) string {
	c := cells(row)
	if len(c) < 2 || strings.HasSuffix(c[1], keptMark) {
		return row
	}
	c[1] += keptMark
	return "| " + strings.Join(c, " | ") + " |"
}

// otherRows returns g's rows of the table of every other benchmark.
func otherRows(g group, known map[string]bool) []string {
	var rows []string
	for _, n := range slices.Sorted(maps.Keys(g.stats)) {
		if known[n] {
			continue
		}
		var ms []string
		for _, u := range slices.Sorted(maps.Keys(g.stats[n])) {
			ms = append(ms, withCI(g.stats[n][u], u))
		}
		rows = append(rows, fmt.Sprintf("| %s | `%s` | %s |", g.name, n, strings.Join(ms, "; ")))
	}
	return rows
}

// replaceSection replaces the text between <!-- benchtable:name --> and
// <!-- /benchtable:name --> with body.
func replaceSection(doc, name, body string) (string, error) {
	begin, end := "<!-- benchtable:"+name+" -->", "<!-- /benchtable:"+name+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("the document has no %s … %s section", begin, end)
	}
	return doc[:i+len(begin)] + "\n" + body + doc[j:], nil
}
