#!/usr/bin/env bash
# The README's walk-through, end to end: an image in a local registry is DENIED by
# `signet verify`, `signet review` and the served webhook, then signed (Cosign key, then a
# Notation signature from a test CA) and ALLOWED by all three. The test suite runs it
# (tests/it/walkthrough.rs), so the README's commands cannot rot.
#
#   scripts/walkthrough.sh [REGISTRY]
#
# REGISTRY is HOST:PORT of a running plain-HTTP registry (or $SIGNET_WALKTHROUGH_REGISTRY);
# without one, Debian's docker-registry (scripts/install-test-deps.sh installs it) is started on
# 127.0.0.1:5000 and stopped at the end. The webhook listens on $SIGNET_WALKTHROUGH_LISTEN
# (127.0.0.1:8443) with its admin port on $SIGNET_WALKTHROUGH_ADMIN (127.0.0.1:8080).
# $SIGNET_BIN_DIR names a directory holding built `signet` and `signet-dev`; without it they are
# built with cargo. Each check prints a line `verdict: WHAT: ALLOWED|DENIED`; the script exits
# non-zero when a verdict is not the one the walk-through expects.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY=${1:-${SIGNET_WALKTHROUGH_REGISTRY:-}}
LISTEN=${SIGNET_WALKTHROUGH_LISTEN:-127.0.0.1:8443}
ADMIN=${SIGNET_WALKTHROUGH_ADMIN:-127.0.0.1:8080}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/signet-walkthrough.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    if kill "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n## %s\n' "$*"; }
# Prints a command, then runs it (start: in the background, its pid in $started).
run() { printf '$ %s\n' "$*"; "$@"; }
start() { printf '$ %s &\n' "$*"; "$@" & started=$!; pids+=("$started"); }
failures=0
verdict() { # WHAT EXPECTED ACTUAL
  echo "verdict: $1: $3"
  if [[ $3 != "$2" ]]; then
    echo "walkthrough: expected $2 for $1" >&2
    failures=$((failures + 1))
  fi
}
# ALLOWED or DENIED from an AdmissionReview response (JSON or YAML).
allowed_field() {
  if grep -Eq '"?allowed"?: ?true' "$1"; then echo ALLOWED
  elif grep -Eq '"?allowed"?: ?false' "$1"; then echo DENIED
  else echo "NO ANSWER"; fi
}
wait_for() { # URL
  for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "walkthrough: $1 did not answer" >&2
  return 1
}

step "signet and signet-dev"
if [[ -n ${SIGNET_BIN_DIR:-} ]]; then
  export PATH="$SIGNET_BIN_DIR:$PATH"
else
  run cargo build --locked --bin signet
  run cargo build --locked -p signet-testkit --bin signet-dev
  export PATH="$PWD/target/debug:$PATH"
fi

if [[ -z $REGISTRY ]]; then
  step "A registry on loopback (Debian's docker-registry)"
  REGISTRY=127.0.0.1:5000
  if ! command -v docker-registry > /dev/null; then
    echo "walkthrough: docker-registry is not installed (apt-get install docker-registry, or" \
      "scripts/install-test-deps.sh), and no REGISTRY was given" >&2
    exit 2
  fi
  printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n' \
    "$WORK/registry" "$REGISTRY" > "$WORK/registry.yml"
  start docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1
  wait_for "http://$REGISTRY/v2/"
fi

# The three ways to ask signet about IMAGE (WHAT names the check in the verdict lines).
check() { # WHAT EXPECTED IMAGE
  local what=$1 expected=$2 image=$3 status=0
  run signet verify --policies "$WORK/policies" --insecure-registry "$REGISTRY" "$image" || status=$?
  case $status in
    0) verdict "$what: signet verify" "$expected" ALLOWED ;;
    1) verdict "$what: signet verify" "$expected" DENIED ;;
    *) verdict "$what: signet verify" "$expected" "ERROR (exit $status)" ;;
  esac

  # An AdmissionReview as the API server sends it, for a Pod running IMAGE.
  cat > "$WORK/review.json" <<EOF
{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
 "request": {"uid": "walkthrough", "operation": "CREATE", "namespace": "default",
  "kind": {"group": "", "version": "v1", "kind": "Pod"},
  "resource": {"group": "", "version": "v1", "resource": "pods"},
  "userInfo": {"username": "walkthrough"},
  "object": {"apiVersion": "v1", "kind": "Pod",
   "metadata": {"name": "app", "namespace": "default"},
   "spec": {"containers": [{"name": "app", "image": "$image"}]}}}}
EOF
  run signet review --policies "$WORK/policies" --insecure-registry "$REGISTRY" \
    "$WORK/review.json" > "$WORK/response.json" || true
  cat "$WORK/response.json"
  verdict "$what: signet review" "$expected" "$(allowed_field "$WORK/response.json")"

  # The webhook, called the way the API server calls it. A fresh server per check: signet
  # caches an "untrusted" verdict for 30 s, so a running server sees a new signature later.
  start signet serve --listen "$LISTEN" --admin-listen "$ADMIN" --policies "$WORK/policies" \
    --insecure-registry "$REGISTRY" --self-signed-ca-out "$WORK/signet-ca.pem" \
    2> "$WORK/serve.log"
  wait_for "http://$ADMIN/readyz"
  run curl -sS --cacert "$WORK/signet-ca.pem" -H 'content-type: application/json' \
    --data-binary @"$WORK/review.json" "https://$LISTEN/validate?timeout=10s" \
    > "$WORK/response.json" || true
  cat "$WORK/response.json"; echo
  verdict "$what: signet serve" "$expected" "$(allowed_field "$WORK/response.json")"
  if kill "$started"; then wait "$started" || true; fi
}

step "Cosign: an image, a key, and a policy trusting the key for that image"
run signet-dev push-demo-image "$REGISTRY/demo/cosign-app:v1"
run signet-dev keygen --out "$WORK/keys"
mkdir -p "$WORK/policies"
cp "$WORK/keys/cosign.pub" "$WORK/policies/"
cat > "$WORK/policies/cosign-demo.yaml" <<EOF
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: cosign-demo}
spec:
  images: ["$REGISTRY/demo/cosign-app"]
  mode: enforce
  authorities:
    - name: ci
      cosign:
        keys: [{file: cosign.pub}]
EOF
cat "$WORK/policies/cosign-demo.yaml"
run signet policy check "$WORK/policies"

step "Cosign: before signing"
check "cosign before signing" DENIED "$REGISTRY/demo/cosign-app:v1"
step "Cosign: sign with the key (what cosign sign --key writes)"
run signet-dev sign cosign --key "$WORK/keys/cosign.key" "$REGISTRY/demo/cosign-app:v1"
step "Cosign: after signing"
check "cosign after signing" ALLOWED "$REGISTRY/demo/cosign-app:v1"

step "Notation: an image, a test CA, and a policy trusting the CA for that image"
run signet-dev push-demo-image "$REGISTRY/demo/notation-app:v1"
run signet-dev notation-ca --out "$WORK/ca"
cp "$WORK/ca/ca.pem" "$WORK/policies/notation-ca.pem"
cat > "$WORK/policies/notation-demo.yaml" <<EOF
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: notation-demo}
spec:
  images: ["$REGISTRY/demo/notation-app"]
  mode: enforce
  authorities:
    - name: release
      notation:
        signatureVerification: {level: strict}
        trustStores:
          - {type: ca, name: dev, certificates: [{file: notation-ca.pem}]}
        trustedIdentities: ["*"]
EOF
cat "$WORK/policies/notation-demo.yaml"
run signet policy check "$WORK/policies"

step "Notation: before signing"
check "notation before signing" DENIED "$REGISTRY/demo/notation-app:v1"
step "Notation: sign (a JWS envelope; --envelope cose for COSE)"
run signet-dev sign notation --ca-dir "$WORK/ca" "$REGISTRY/demo/notation-app:v1"
step "Notation: after signing"
check "notation after signing" ALLOWED "$REGISTRY/demo/notation-app:v1"

echo
if ((failures > 0)); then
  echo "walkthrough: $failures verdict(s) differ from the expected ones" >&2
  exit 1
fi
echo "walkthrough: every verdict as expected"
