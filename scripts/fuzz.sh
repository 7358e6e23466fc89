#!/usr/bin/env bash
# Runs signet's fuzz targets (fuzz/, cargo fuzz + libFuzzer) for SECONDS each (default 10).
#   scripts/fuzz.sh                 every target, 10 s each (what .ci/run does, shorter)
#   scripts/fuzz.sh 600 crl ocsp    the long run of some targets
#   FUZZ_PROFILE=dev scripts/fuzz.sh 5   a smoke run on a dev build (compiles in a third of the
#                                   time; what .ci/run does)
# Installs cargo-fuzz when missing, seeds each corpus (fuzz/corpus/TARGET, kept between runs)
# from the project's fixtures, policies and an openssl-made CA with a CRL and an OCSP answer,
# and fails when a target panics, hangs or leaks; libFuzzer's reproducer is then under
# fuzz/artifacts/TARGET/ (replay: cargo fuzz run -s none TARGET FILE).
# Builds with stable Rust: no sanitizer (-s none; the code is safe Rust), debug assertions on
# (-a) so that arithmetic overflow is a finding.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
shift || true
all=(review image_ref policy_yaml notation_envelope x509_chain timestamp crl ocsp cosign_bundle)
[[ $# -gt 0 ]] && targets=("$@") || targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install --locked cargo-fuzz
fi
command -v openssl >/dev/null || { echo "fuzz: openssl is needed (scripts/install-test-deps.sh)" >&2; exit 1; }

corpus=fuzz/corpus
mkdir -p "$corpus"
seed() { # seed TARGET FILE...: copy files into the target's corpus
  local t=$1; shift
  mkdir -p "$corpus/$t"
  for f in "$@"; do [[ -f $f ]] && cp -n "$f" "$corpus/$t/" || true; done
}
seed review tests/fixtures/admission/*.json
seed policy_yaml policies/*.yaml policies/examples/*.yaml
mkdir -p "$corpus/image_ref"
i=0
for line in 'nginx' 'docker.io/library/nginx:1.27' 'registry.example.com/prod/**
registry.example.com/prod/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef' \
  'localhost:5000/**
LocalHost:5000/x/y:1' '*.example.com/**/base
REGISTRY.EXAMPLE.COM:443/a/b/c/base:2' '[::1]:5000/x:1'; do
  printf '%s' "$line" > "$corpus/image_ref/seed-$i"; i=$((i + 1))
done
mkdir -p "$corpus/cosign_bundle"
printf '%s' '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"k"},"tlogEntries":[]},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA","keyid":""}]}}' \
  > "$corpus/cosign_bundle/seed-dsse"
# Notation envelopes made by notation itself, where the conformance data is beside the checkout.
envelopes=../shared/conformance/notation/envelopes
if [[ -d $envelopes ]]; then
  mkdir -p "$corpus/notation_envelope"
  { printf '\x00'; cat "$envelopes/jws_signature.sig"; } > "$corpus/notation_envelope/seed-jws"
  { printf '\x01'; cat "$envelopes/cose_signature.sig"; } > "$corpus/notation_envelope/seed-cose"
fi

# A CA, a leaf, a CRL revoking the leaf and an OCSP answer, all by openssl: seeds for the
# revocation targets, which judge answers against this pair (SIGNET_FUZZ_PKI).
pki=fuzz/corpus/.pki
if [[ ! -f $pki/ca.der ]]; then
  rm -rf "$pki"; mkdir -p "$pki/db"
  (
    cd "$pki"
    touch db/index.txt; echo 01 > db/crlnumber
    cat > ca.cnf <<'CNF'
[ca]
default_ca = ca
[ca]
dir = .
database = db/index.txt
crlnumber = db/crlnumber
default_md = sha256
default_crl_days = 30
CNF
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -subj /CN=fuzz-ca -days 3650 -out ca.pem -addext basicConstraints=critical,CA:true \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key \
      -subj /CN=fuzz-leaf -out leaf.csr 2>/dev/null
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 3650 \
      -out leaf.pem 2>/dev/null
    openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -revoke leaf.pem 2>/dev/null
    openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -gencrl -out crl.pem 2>/dev/null
    openssl x509 -in ca.pem -outform DER -out ca.der
    openssl x509 -in leaf.pem -outform DER -out leaf.der
    openssl crl -in crl.pem -outform DER -out crl.der
    openssl ocsp -issuer ca.pem -cert leaf.pem -reqout req.der -no_nonce 2>/dev/null
    openssl ocsp -index db/index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin req.der \
      -respout ocsp.der -ndays 30 2>/dev/null
  )
fi
seed crl "$pki/crl.der"
seed ocsp "$pki/ocsp.der"
seed x509_chain
seed timestamp
export SIGNET_FUZZ_PKI=$PWD/$pki

echo "fuzz: building the targets (instrumented release build; minutes the first time)"
profile=()
[[ ${FUZZ_PROFILE:-release} == dev ]] && profile=(--dev)
cargo fuzz build -s none -a "${profile[@]}"
failed=()
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds}s"
  if ! cargo fuzz run -s none -a "${profile[@]}" "$t" "$corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"fuzz/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 40 "fuzz/$t.log" >&2
  else
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "fuzz/$t.log" | tr '\n' ' '
    echo
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (reproducers under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds}s clean"
