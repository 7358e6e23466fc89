#!/usr/bin/env bash
# What the benchmarks need beyond the test suite's dependencies (scripts/install-test-deps.sh):
#   nginx-light  the static-body TLS server scenario (n) compares signet's cache hit with
#   wrk          the HTTP load generator of scenario (n), for signet and nginx alike
#   nghttp2-client  its `h2load`: scenario (n)'s HTTP/2 (and HTTP/1.1) runs, both servers alike
# Idempotent: installs nothing when all are present (run as root otherwise). The package's
# own nginx service is not used: scenario (n) runs nginx with a configuration of its own.
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench/install.sh: missing ${missing[*]}; run this script as root" >&2
        exit 1
    fi
    echo "bench/install.sh: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
PATH="$PATH:/usr/sbin"
for cmd in nginx wrk h2load; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "bench/install.sh: $cmd still missing" >&2; exit 1; }
done
