#!/usr/bin/env bash
# Installs what signet's test suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: installs nothing when everything is already present, and says what it installs.
#   docker-registry  the real OCI registry the integration tests run (crates/testkit/src/registry.rs)
#   apache2-utils    htpasswd, for bcrypt entries of the registry's Basic auth
#   openssl          the independent cross-check of the test Cosign signer
#   prometheus       promtool, which checks the PromQL of manifests/components/prometheus (the
#                    package's server is not started)
#   kubernetes-validate (PyPI)  offline schema validation of the deploy manifests
set -euo pipefail

# command -> Debian package that provides it
declare -A packages=(
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [promtool]=prometheus
)

missing=()
for cmd in "${!packages[@]}"; do
  pkg=${packages[$cmd]}
  if ! command -v "$cmd" >/dev/null 2>&1 \
    || ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

# kubernetes-validate comes from PyPI: make sure python3 and pip exist first (a fresh Debian 12
# has neither necessarily).
need_kv=0
python3 -c 'import kubernetes_validate' >/dev/null 2>&1 || need_kv=1
if ((need_kv)); then
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: missing ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "install-test-deps: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The package's own service (port 5000) is not needed: tests run their own registry processes on
# free ports, so nothing here starts or stops it.

if ((need_kv)); then
  echo "install-test-deps: installing PyPI package kubernetes-validate"
  if ! python3 -m pip install --quiet kubernetes-validate; then
    # Debian's own python3 is "externally managed" (PEP 668): pip refuses without this flag.
    echo "install-test-deps: retrying with --break-system-packages (Debian-managed python3)"
    python3 -m pip install --quiet --break-system-packages kubernetes-validate
  fi
fi

if ((${#missing[@]} == 0 && need_kv == 0)); then
  echo "install-test-deps: all test dependencies present"
fi

for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-test-deps: $cmd still missing" >&2; exit 1; }
done
python3 -c 'import kubernetes_validate' || { echo "install-test-deps: kubernetes_validate still missing" >&2; exit 1; }
