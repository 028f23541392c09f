#!/usr/bin/env bash
# Runs every benchmark several times, summarises each group with benchstat
# and rewrites the generated tables of docs/PERFORMANCE.md (make bench).
#
#   BENCH_COUNT            runs of each component benchmark (default 6: benchstat
#                          gives a 95 % confidence interval from 6 runs)
#   BENCH_PLATFORM_COUNT   runs of each platform benchmark in test/bench and
#                          test/ (default 3; each run takes minutes)
#   BENCH_GROUPS           groups to run (default all; see the list below);
#                          groups not run keep their earlier results in
#                          $BENCH_OUT, or else their rows of the document
#   BENCH_OUT              results folder (default .bench)
#   IRU_CAPACITY_N         incidents the capacity benchmark opens (default the
#                          goal's 10,000, one run, about 10 minutes on 2 cores)
#   IRU_BENCH_GOMEMLIMIT   the GOMEMLIMIT of the platform benchmarks, whose
#                          process hosts the worker (default 900MiB, the
#                          worker's in docker-compose.yml; "off" for none).
#                          Under it the process raises GOGC as the worker does
#                          (internal/gctune); the Temporal servers they start
#                          get the same setting whatever this is.
#
# With PROFILE=1 (make bench-profile) the platform benchmarks run once each
# and write CPU and allocation profiles to $BENCH_OUT/profiles instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh
export IRU_TEMPORAL_CLI="$PWD/.tools/bin/temporal"
export IRU_TEMPORAL_SERVER_BIN="$PWD/.tools/bin/temporal-server"
export IRU_TEMPORAL_SQL_TOOL="$PWD/.tools/bin/temporal-sql-tool"
out=${BENCH_OUT:-.bench}
count=${BENCH_COUNT:-6}
pcount=${BENCH_PLATFORM_COUNT:-3}
mkdir -p "$out"

# group name, count, then the go test arguments.
groups=(
  "ledger|$count|-bench BenchmarkAppend -benchtime 2s ./internal/ledger/"
  "evidence|$count|-bench BenchmarkLocker100MB -benchtime 2x ./internal/evidence/"
  "pve|$count|-bench . -benchtime 2s ./internal/lab/pve/"
  "keycloak|$count|-bench . -benchtime 2s ./internal/lab/keycloak/"
  "proxmox|$count|-bench Containment|IsolateLatency -benchtime 10x ./activities/proxmox/"
  "codec|$count|-bench . -benchtime 1s ./internal/codec/"
  "intake|$count|-bench IntakeStorm|BenchmarkHandler -benchtime 5000x ./internal/intake/"
  "accesslog|$count|-bench BenchmarkRecordAndAppend -benchtime 2000x ./internal/accesslog/"
  "storm|$pcount|-bench ^BenchmarkAlertStorm$ -benchtime 1x -timeout 60m ./test/bench/"
  "storm-large|1|-bench ^BenchmarkAlertStormLarge$ -benchtime 1x -timeout 60m ./test/bench/"
  "opening|$pcount|-bench IncidentOpening -benchtime 1x -timeout 30m ./test/bench/"
  "list|$count|-bench ListIncidents -benchtime 3x -timeout 30m ./internal/api/"
  "contain|$pcount|-bench TimeToContain -benchtime 1x -timeout 90m ./test/bench/"
  "capacity|1|-bench Capacity -benchtime 1x -timeout 60m ./test/"
)
export IRU_CAPACITY_N=${IRU_CAPACITY_N:-10000}

# The groups whose process hosts the worker, and the platform benchmarks
# make bench-profile profiles.
hosts=(storm storm-large opening contain capacity)
platform=(storm contain capacity)

# groupenv NAME: the variables a group's run adds, if any (a process that
# hosts the worker runs under the worker's memory limit, and so with the
# worker's collector setting).
groupenv() {
  local limit=${IRU_BENCH_GOMEMLIMIT:-900MiB}
  if [[ " ${hosts[*]} " == *" $1 "* && "$limit" != off ]]; then
    echo "GOMEMLIMIT=$limit"
  fi
}

selected() { # name
  [[ -z "${BENCH_GROUPS:-}" ]] && return 0
  [[ " $BENCH_GROUPS " == *" $1 "* ]]
}

if [[ "${PROFILE:-}" == 1 ]]; then
  mkdir -p "$out/profiles"
  for g in "${groups[@]}"; do
    IFS='|' read -r name _ args <<<"$g"
    [[ " ${platform[*]} " == *" $name "* ]] && selected "$name" || continue
    echo "== profile $name" >&2
    # shellcheck disable=SC2046,SC2086 # args and groupenv are word lists
    env $(groupenv "$name") go test -tags integration -run '^$' $args -count 1 -o "$out/profiles/$name.test" \
      -cpuprofile "$out/profiles/$name.cpu.pprof" -memprofile "$out/profiles/$name.alloc.pprof" -memprofilerate 65536 \
      | tee "$out/profiles/$name.txt"
    go tool pprof -top -nodecount 30 "$out/profiles/$name.test" "$out/profiles/$name.cpu.pprof" > "$out/profiles/$name.cpu.top" 2>/dev/null
    go tool pprof -sample_index alloc_space -top -nodecount 30 "$out/profiles/$name.test" "$out/profiles/$name.alloc.pprof" > "$out/profiles/$name.alloc.top" 2>/dev/null
  done
  echo "profiles in $out/profiles (go tool pprof -http : $out/profiles/NAME.test $out/profiles/NAME.cpu.pprof)" >&2
  exit 0
fi

for g in "${groups[@]}"; do
  IFS='|' read -r name n args <<<"$g"
  selected "$name" || continue
  echo "== $name ($n runs)" >&2
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M')"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go env GOVERSION)"
    vars=$(groupenv "$name")
    if [[ -n "$vars" ]]; then echo "env: $vars"; fi
    # shellcheck disable=SC2086 # args and vars are word lists
    env $vars go test -tags integration -run '^$' $args -count "$n"
  } > "$out/$name.txt.new"
  mv "$out/$name.txt.new" "$out/$name.txt"
  .tools/bin/benchstat -format csv "$out/$name.txt" > "$out/$name.csv" 2> "$out/$name.err"
  # benchstat skips a result line that something else printed into (a log
  # line between a benchmark's name and its figures) with only a warning:
  # the run would be lost from the table without a word.
  if grep -F "$out/$name.txt:" "$out/$name.err" >&2; then
    echo "bench: $name: malformed result lines in $out/$name.txt (above); the table is not rewritten" >&2
    exit 1
  fi
  cat "$out/$name.err" >&2
done
for f in "$out"/*.txt; do .tools/bin/benchstat "$f"; done > "$out/benchstat.txt" 2>&1
go run ./scripts/benchtable -dir "$out" -doc docs/PERFORMANCE.md
echo "docs/PERFORMANCE.md rewritten from $out (benchstat summaries: $out/benchstat.txt)" >&2
