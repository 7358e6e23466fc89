#!/usr/bin/env bash
# The whole benchmark suite, one command: builds release, waits (a while) for a quiet machine,
# runs every scenario against the real `signet serve` binary and a real docker-registry, then
# the criterion micro-benchmarks. Prints markdown; arguments go to the load generator, e.g.
#   bench/run.sh                     # full run (about 5 minutes plus the build)
#   bench/run.sh --quick             # smoke run of every scenario (well under a minute)
#   bench/run.sh --only a,c --secs 10
#   bench/run.sh --only p            # the cache hit over HTTP/2 against HTTP/1.1
#   bench/run.sh --only a,n --split-cpus   # signet and nginx on half the CPUs, the clients on the rest
#   bench/run.sh --only f,r --pods 10000 --pool 200   # replay, one replica then two
#   bench/run.sh --only limits,c --cold-kinds notation-jws,notation-cose   # some cold kinds only
#   bench/run.sh --only soak --soak-secs 150   # hostile load: 10,000 idle connections and more
# Environment: MAX_WAIT (seconds to wait for load < LOAD_MAX, default 300), LOAD_MAX (1.5),
# SKIP_MICRO=1 to skip criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

command -v docker-registry >/dev/null ||
    { echo "docker-registry is missing: run scripts/install-test-deps.sh (as root)" >&2; exit 2; }
# The OCSP responder of the Notation cold kinds answers with `openssl ocsp`.
command -v openssl >/dev/null ||
    { echo "openssl is missing: run scripts/install-test-deps.sh (as root)" >&2; exit 2; }
# nginx, wrk and h2load for the static-body floor of scenario (n).
bench/install.sh
export PATH="$PATH:/usr/sbin"
# The burst scenario holds 1,000 connections on each side, the soak 10,000 (signet raises its
# own soft limit to the hard one; the soak scales down if the hard limit is below ~11,000).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --locked --bin signet --example loadgen

max_wait=${MAX_WAIT:-300}
load_max=${LOAD_MAX:-1.5}
waited=0
while awk -v m="$load_max" '{exit !($1 >= m)}' /proc/loadavg && [ "$waited" -lt "$max_wait" ]; do
    sleep 10; waited=$((waited + 10))
done

echo "## signet benchmark"
echo
echo "- date: $(date -u +%FT%TZ); commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench Cargo.toml || echo ' (dirty)')"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -h | awk '/^Mem:/{print $2}') RAM"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (waited ${waited} s for < ${load_max})"
echo
"$CARGO_TARGET_DIR/release/examples/loadgen" --signet "$CARGO_TARGET_DIR/release/signet" "$@"

if [ -z "${SKIP_MICRO:-}" ]; then
    echo
    echo "### criterion micro-benchmarks (load $(cut -d' ' -f1 /proc/loadavg))"
    echo
    echo '```'
    cargo bench --locked --bench micro -- --warm-up-time 1 --measurement-time 3 2>/dev/null |
        grep -B1 -E 'time: +\[' | grep -v -E '^--$|outliers|mild|severe|Performance|change|No change'
    echo '```'
fi
