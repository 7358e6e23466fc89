#!/usr/bin/env bash
# The project's one test command: test dependencies, then every test target (unit tests,
# the tests/it integration binary against a real docker-registry, benches and examples built).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo test --locked --all-targets "$@"
