#!/usr/bin/env bash
# Makes a private CA and a serving certificate for signet's webhook Service, for development
# and test clusters. Production: use cert-manager (see README.md).
#
# Usage: certs/gen.sh [--namespace NS] [--service NAME] [--out-dir DIR] [--days N] [--force]
#   defaults: --namespace signet-system --service signet --out-dir certs/out --days 365
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/tls.crt, DIR/tls.key (keys mode 0600), then prints the
# base64 caBundle and the kubectl commands that use them. Never commit DIR (certs/.gitignore).
set -euo pipefail

namespace=signet-system
service=signet
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir="$script_dir/out"
days=365
force=0

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace=${2:?--namespace needs a value}; shift 2 ;;
    --service) service=${2:?--service needs a value}; shift 2 ;;
    --out-dir) out_dir=${2:?--out-dir needs a value}; shift 2 ;;
    --days) days=${2:?--days needs a value}; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gen.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v openssl >/dev/null || { echo "gen.sh: openssl is required" >&2; exit 1; }
dns_re='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ $namespace =~ $dns_re ]] || { echo "gen.sh: invalid namespace: $namespace" >&2; exit 2; }
[[ $service =~ $dns_re ]] || { echo "gen.sh: invalid service name: $service" >&2; exit 2; }
[[ $days =~ ^[0-9]+$ ]] || { echo "gen.sh: --days must be a number" >&2; exit 2; }

if [ -e "$out_dir/tls.key" ] && [ "$force" -ne 1 ]; then
  echo "gen.sh: $out_dir/tls.key exists; pass --force to replace the CA and certificate" >&2
  exit 1
fi
mkdir -p "$out_dir"
umask 077

host="$service.$namespace.svc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# CA: P-256, CA:TRUE with pathlen 0, only for signing this one serving certificate.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$days" \
  -subj "/O=signet development/CN=signet webhook CA ($namespace)" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" \
  -out "$work/ca.crt" 2>/dev/null

# Serving certificate. The API server verifies the SAN against the Service's DNS name
# (<service>.<namespace>.svc); Go TLS ignores the CN, so the SANs are what matter.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/tls.key.ec"
# PKCS#8 ("BEGIN PRIVATE KEY"), which every TLS stack reads.
openssl pkcs8 -topk8 -nocrypt -in "$work/tls.key.ec" -out "$work/tls.key"
cat > "$work/ext.cnf" <<CNF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=DNS:$service,DNS:$service.$namespace,DNS:$host,DNS:$host.cluster.local
CNF
openssl req -new -key "$work/tls.key" -subj "/CN=$host" -out "$work/tls.csr"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -sha256 -days "$days" -extfile "$work/ext.cnf" \
  -out "$work/tls.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null

for f in ca.key ca.crt tls.key tls.crt; do
  install -m 0600 "$work/$f" "$out_dir/$f"
done
chmod 0644 "$out_dir/ca.crt" "$out_dir/tls.crt"

ca_bundle=$(base64 < "$out_dir/ca.crt" | tr -d '\n')

cat <<MSG
Wrote $out_dir/{ca.crt,ca.key,tls.crt,tls.key} for $host (valid $days days).

caBundle (base64 of ca.crt):
$ca_bundle

Create the TLS Secret (namespace first if it does not exist yet):
  kubectl create namespace $namespace --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n $namespace create secret tls signet-tls --cert=$out_dir/tls.crt --key=$out_dir/tls.key

Apply the manifests with the caBundle filled in:
  kubectl kustomize manifests/ | sed "s|caBundle: .*|caBundle: $ca_bundle|" | kubectl apply -f -
MSG
if [ "$namespace" != signet-system ] || [ "$service" != signet ]; then
  cat <<MSG

Note: manifests/ uses namespace signet-system and Service signet. Before applying, change the
objects' namespace, the webhook's clientConfig.service and namespaceSelector, and the Service
name to match $service.$namespace.
MSG
fi
