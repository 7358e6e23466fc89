#!/usr/bin/env bash
# The project's one test command: test dependencies, then every test target (unit tests,
# the tests/it integration binary against a real docker-registry, the criterion benches in
# their smoke mode, and the load generator built), then the test kit's own tests. Ends with
# one line totalling every target's results, since cargo's last line is that of the last
# target only.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The walk-through's signing tool, built before the tests so that its compilation does not run
# beside timing-sensitive tests.
cargo build --locked -p signet-testkit --bin signet-dev
{
    failed=0
    cargo test --locked --no-fail-fast --all-targets "$@" || failed=1
    cargo test --locked -p signet-testkit || failed=1
    exit "$failed"
} 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) s += $i
        }
     }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
