#!/bin/sh
# Runs the core benchmarks of issue 2, each beside its peers in the same run,
# and prints a summary: medians, ratios to greenlet, and the goals.
#
#   benches/run-all.sh                 # criterion: --warm-up-time 1 --measurement-time 5
#   benches/run-all.sh --measurement-time 10
#
# Environment: CARGO_TARGET_DIR (where criterion keeps its estimates),
# IDLE_TASKS / IDLE_TIMEOUT_SECS (see benches/hub_idle_memory.rs).
# Full outputs are kept in $LOG_DIR (default: a fresh temporary directory).
set -eu
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
log=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$log"
if [ $# -eq 0 ]; then
    set -- --warm-up-time 1 --measurement-time 5
fi

for b in greenlet_switch hub_yield hub_spawn; do
    echo "== $b"
    cargo bench --bench "$b" -- "$@" 2>&1 | tee "$log/$b.txt"
done
for b in hub_sleep_lateness hub_idle_memory; do
    echo "== $b"
    cargo bench --bench "$b" 2>&1 | tee "$log/$b.txt"
done

# Median (ns) of one criterion benchmark, from the run that just ended.
median() {
    sed -n 's/.*"median":{"confidence_interval":{[^}]*},"point_estimate":\([^,]*\),.*/\1/p' \
        "$target/criterion/$1/new/estimates.json" 2>/dev/null
}

# One line per benchmark of a group: median / divisor, and its ratio to the
# first (greenlet) one.
group() { # group divisor unit benchmark...
    g=$1 div=$2 unit=$3
    shift 3
    base=""
    for b in "$@"; do
        m=$(median "$g/$b")
        if [ -z "$m" ]; then
            printf '  %-28s (no result)\n' "$b"
            continue
        fi
        [ -n "$base" ] || base=$m
        awk -v b="$b" -v m="$m" -v d="$div" -v u="$unit" -v base="$base" \
            'BEGIN { printf "  %-28s %10.1f %s   %6.2fx greenlet\n", b, m / d, u, m / base }'
    done
}

echo
echo "==== summary (medians; machine: $(nproc) cores, $(uname -r)) ===="
echo "switch round trip (goal: greenlet within 2x of corosensei)"
group switch_round_trip 1 ns greenlet corosensei
echo "yield_now, per yield (goal: greenlet <= 10 ns)"
group yield_now 1 ns greenlet_1_worker tokio_current_thread tokio_1_worker tokio_2_workers may_1_worker
echo "spawn + join of 100,000, per task (goal: greenlet <= 100 ns)"
group spawn_join_100k 100000 ns greenlet_2_workers greenlet_2_workers_joinall tokio_2_workers may_2_workers
echo "100,000 sleeps of 10-100 ms, lateness (goal: greenlet p99 <= 2 ms)"
grep -e ' round ' -e '^machine stalls' "$log/hub_sleep_lateness.txt" | sed 's/^/  /'
echo "idle memory (goal: greenlet <= 4.7 KB per task)"
sed -n '/^summary:/,$p' "$log/hub_idle_memory.txt" | sed '1d'
echo "(full outputs in $log)"
