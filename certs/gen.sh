#!/usr/bin/env bash
# Makes a private CA and a serving certificate for signet's webhook Service, for development
# and test clusters. Production: use cert-manager (see README.md).
#
# Usage: certs/gen.sh [--namespace NS] [--service NAME] [--out-dir DIR] [--days N] [--force]
#                     [--ip ADDR]... [--dns NAME]... [--manifests DIR]
#   defaults: --namespace signet-system --service signet --out-dir certs/out --days 365
#   --ip, --dns   extra subjectAltNames (repeatable), e.g. for a webhook registered by URL
#                 (clientConfig.url: https://ADDR:8443/validate) instead of by Service
#   --manifests   the kustomization the overlay builds on (default: this repository's manifests/)
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/tls.crt, DIR/tls.key (keys mode 0600) and
# DIR/kustomization.yaml: an overlay of manifests/ with the caBundle filled in and the Secret
# signet-tls, so `kubectl apply -k DIR` deploys everything. Prints the base64 caBundle.
# Never commit DIR (certs/.gitignore).
set -euo pipefail

namespace=signet-system
service=signet
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir="$script_dir/out"
days=365
force=0
extra_ips=()
extra_dns=()
manifests="$script_dir/../manifests"

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace=${2:?--namespace needs a value}; shift 2 ;;
    --service) service=${2:?--service needs a value}; shift 2 ;;
    --out-dir) out_dir=${2:?--out-dir needs a value}; shift 2 ;;
    --days) days=${2:?--days needs a value}; shift 2 ;;
    --force) force=1; shift ;;
    --ip) extra_ips+=("${2:?--ip needs an address}"); shift 2 ;;
    --dns) extra_dns+=("${2:?--dns needs a name}"); shift 2 ;;
    --manifests) manifests=${2:?--manifests needs a directory}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gen.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v openssl >/dev/null || { echo "gen.sh: openssl is required" >&2; exit 1; }
dns_re='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ $namespace =~ $dns_re ]] || { echo "gen.sh: invalid namespace: $namespace" >&2; exit 2; }
[[ $service =~ $dns_re ]] || { echo "gen.sh: invalid service name: $service" >&2; exit 2; }
[[ $days =~ ^[0-9]+$ ]] || { echo "gen.sh: --days must be a number" >&2; exit 2; }
ipv4_re='^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$'
ipv6_re='^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$'
for ip in ${extra_ips[@]+"${extra_ips[@]}"}; do
  [[ $ip =~ $ipv4_re || $ip =~ $ipv6_re ]] || { echo "gen.sh: --ip: not an IP address: $ip" >&2; exit 2; }
done
fqdn_re='^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'
for name in ${extra_dns[@]+"${extra_dns[@]}"}; do
  [[ $name =~ $fqdn_re ]] || { echo "gen.sh: --dns: not a lower-case DNS name: $name" >&2; exit 2; }
done
[ -f "$manifests/kustomization.yaml" ] \
  || { echo "gen.sh: --manifests: no kustomization.yaml in $manifests" >&2; exit 2; }

if [ -e "$out_dir/tls.key" ] && [ "$force" -ne 1 ]; then
  echo "gen.sh: $out_dir/tls.key exists; pass --force to replace the CA and certificate" >&2
  exit 1
fi
mkdir -p "$out_dir"
umask 077

host="$service.$namespace.svc"
sans="DNS:$service,DNS:$service.$namespace,DNS:$host,DNS:$host.cluster.local"
for name in ${extra_dns[@]+"${extra_dns[@]}"}; do sans+=",DNS:$name"; done
for ip in ${extra_ips[@]+"${extra_ips[@]}"}; do sans+=",IP:$ip"; done
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
subjectAltName=$sans
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

# The overlay: the base manifests, the CA in every webhook configuration's caBundle (the
# pinning component's too, when an overlay adds it), and the TLS Secret from the files above.
base=$(realpath --relative-to="$out_dir" "$manifests")
ca_patch() {
  cat <<YAML
  - target:
      group: admissionregistration.k8s.io
      kind: $1
      name: $2
    patch: |-
      - op: replace
        path: /webhooks/0/clientConfig/caBundle
        value: $ca_bundle
YAML
}
{
  cat <<YAML
# Written by certs/gen.sh for $host: \`kubectl apply -k $out_dir\`.
# Optional components go here, e.g. (path relative to this directory):
#   components: ["$base/components/pinning"]
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $base
secretGenerator:
  - name: signet-tls
    namespace: $namespace
    type: kubernetes.io/tls
    files:
      - tls.crt
      - tls.key
    options:
      disableNameSuffixHash: true
patches:
YAML
  ca_patch ValidatingWebhookConfiguration signet
  ca_patch MutatingWebhookConfiguration signet-pinning
} > "$out_dir/kustomization.yaml"
chmod 0644 "$out_dir/kustomization.yaml"

cat <<MSG
Wrote $out_dir/{ca.crt,ca.key,tls.crt,tls.key} for $host (valid $days days),
subjectAltName: $sans
and $out_dir/kustomization.yaml (manifests/ + caBundle + Secret signet-tls).

Deploy everything (namespace, Secret, webhook):
  kubectl apply -k $out_dir

caBundle (base64 of ca.crt):
$ca_bundle

Or create the TLS Secret yourself (namespace first if it does not exist yet):
  kubectl create namespace $namespace --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n $namespace create secret tls signet-tls --cert=$out_dir/tls.crt --key=$out_dir/tls.key

Or, without the overlay, apply the manifests with the caBundle filled in:
  kubectl kustomize manifests/ | sed "s|caBundle: .*|caBundle: $ca_bundle|" | kubectl apply -f -
MSG
if [ "$namespace" != signet-system ] || [ "$service" != signet ]; then
  cat <<MSG

Note: manifests/ uses namespace signet-system and Service signet. Before applying, change the
objects' namespace, the webhook's clientConfig.service and namespaceSelector, and the Service
name to match $service.$namespace.
MSG
fi
