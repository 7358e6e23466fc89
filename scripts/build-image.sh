#!/usr/bin/env bash
# Builds signet's container image without a container daemon: an OCI image layout holding the
# same filesystem as the Dockerfile's runtime stage, made from an already built binary.
#
# Usage: scripts/build-image.sh --binary PATH --out DIR [--tag TAG]
#                               [--push HOST[:PORT]/REPO:TAG [--insecure] [--creds USER:PASS]]
#   --binary    the signet executable (releases: target/release/signet from
#               `cargo build --release --locked`)
#   --out       the OCI image layout directory to write (an earlier layout there is replaced)
#   --tag       the layout's ref name in index.json (default: latest)
#   --push      also upload the image to a registry over the distribution API (anonymous or
#               Basic auth; for token-auth registries use `skopeo copy oci:DIR:TAG docker://...`)
#   --insecure  push over plain HTTP (a development registry)
#   --creds     Basic credentials for --push
#
# The image has one gzip layer: /usr/local/bin/signet, the shared libraries it links against
# and the dynamic loader (from this machine: build on Debian 12, like the Dockerfile's runtime),
# /etc/passwd and /etc/group with the nonroot user 65532, the CA bundle (registry TLS uses the
# system roots), /tmp and /home/nonroot. Modes are kept; owners are 0:0 except /home/nonroot,
# mtimes are 0 and gzip carries no name or time, so the same binary gives the same digest.
# Config: User 65532:65532, Entrypoint /usr/local/bin/signet, Cmd serve, ports 8443 and 8080.
# Prints the manifest digest (sha256:...) as the last line of output.
set -euo pipefail

binary=
out=
tag=latest
push=
insecure=0
creds=

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --push) push=${2:?--push needs HOST/REPO:TAG}; shift 2 ;;
    --insecure) insecure=1; shift ;;
    --creds) creds=${2:?--creds needs USER:PASS}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-image: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

[ -n "$binary" ] || { echo "build-image: --binary is required" >&2; usage >&2; exit 2; }
[ -n "$out" ] || { echo "build-image: --out is required" >&2; usage >&2; exit 2; }
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  echo "build-image: not an executable file: $binary" >&2; exit 2
fi
# The layout directory is replaced: only an earlier layout or an empty directory, never
# anything else a typo could name.
if [ -e "$out" ] && [ ! -f "$out/oci-layout" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "build-image: $out exists and is not an OCI image layout; refusing to replace it" >&2; exit 2
fi
if [ "$insecure" -eq 1 ] && [ -z "$push" ]; then
  echo "build-image: --insecure only applies to --push" >&2; exit 2
fi
for cmd in python3 ldd; do
  command -v "$cmd" >/dev/null || { echo "build-image: $cmd is required" >&2; exit 1; }
done

ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || { echo "build-image: $ca_bundle missing (apt-get install ca-certificates)" >&2; exit 1; }

# Every shared object the binary loads, as absolute paths, the loader included (linux-vdso has
# no file and is skipped). A "not found" library is an error, not a broken image.
if ldd "$binary" | grep -q 'not found'; then
  echo "build-image: unresolved libraries:" >&2; ldd "$binary" >&2; exit 1
fi
libs=$(ldd "$binary" | awk '/=> \//{print $3; next} /^[[:space:]]*\//{print $1}')
[ -n "$libs" ] || { echo "build-image: ldd found no libraries (a static binary needs none; not supported here)" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "build-image: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

BINARY="$binary" OUT="$out" TAG="$tag" PUSH="$push" INSECURE="$insecure" CREDS="$creds" \
  LIBS="$libs" ARCH="$arch" CA_BUNDLE="$ca_bundle" python3 - <<'PY'
import base64, gzip, hashlib, io, json, os, shutil, sys, tarfile, urllib.error, urllib.parse, urllib.request

binary, out, tag = os.environ["BINARY"], os.environ["OUT"], os.environ["TAG"]
push, insecure, creds = os.environ["PUSH"], os.environ["INSECURE"] == "1", os.environ["CREDS"]
libs, arch, ca_bundle = os.environ["LIBS"].split(), os.environ["ARCH"], os.environ["CA_BUNDLE"]

def die(msg):
    print(f"build-image: {msg}", file=sys.stderr)
    sys.exit(1)

# path in the image -> ("file", host path, mode) | ("dir", mode, uid) | ("symlink", target) | ("data", bytes, mode)
entries = {}

def add_parents(path):
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        entries.setdefault("/".join(parts[:i]), ("dir", 0o755, 0))

def add(path, entry):
    path = path.strip("/")
    add_parents(path)
    entries[path] = entry

# Debian 12 is merged-/usr: /lib and /lib64 are symlinks into /usr, as on the host, so the
# loader path baked into the binary (/lib64/ld-linux-x86-64.so.2) and ldd's /lib/... paths
# resolve in the image the same way.
for top in ("lib", "lib64"):
    if os.path.islink("/" + top):
        add(top, ("symlink", os.readlink("/" + top)))
for lib in libs:
    real = os.path.realpath(lib)
    add(real, ("file", real, 0o755))
    canonical = os.path.join(os.path.realpath(os.path.dirname(lib)), os.path.basename(lib))
    if canonical != real:  # e.g. /usr/lib64/ld-linux-x86-64.so.2 -> the multiarch file
        add(canonical, ("symlink", real))

add("usr/local/bin/signet", ("file", binary, 0o755))
add("etc/passwd", ("data", b"root:x:0:0:root:/root:/sbin/nologin\n"
                   b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n", 0o644))
add("etc/group", ("data", b"root:x:0:\nnonroot:x:65532:\n", 0o644))
add("etc/nsswitch.conf", ("data", b"hosts: files dns\n", 0o644))
add("etc/ssl/certs/ca-certificates.crt", ("file", ca_bundle, 0o644))
add("tmp", ("dir", 0o1777, 0))
add("home/nonroot", ("dir", 0o700, 65532))

class Sha256Writer(io.RawIOBase):
    """Counts and hashes what passes through to `inner`."""
    def __init__(self, inner):
        self.inner, self.hash, self.size = inner, hashlib.sha256(), 0
    def writable(self):
        return True
    def write(self, b):
        self.hash.update(b)
        self.size += len(b)
        return self.inner.write(b)

if os.path.exists(out):
    shutil.rmtree(out)
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)
tmp_layer = os.path.join(out, "layer.tar.gz.tmp")

with open(tmp_layer, "wb") as f:
    compressed = Sha256Writer(f)
    # filename "" and mtime 0: no name or time in the gzip header (gzip -n).
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
        uncompressed = Sha256Writer(gz)
        with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(entries):
                entry = entries[path]
                info = tarfile.TarInfo(path)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if entry[0] == "dir":
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, entry[1], entry[2], entry[2]
                    tar.addfile(info)
                elif entry[0] == "symlink":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry[1], 0o777
                    tar.addfile(info)
                elif entry[0] == "data":
                    info.size, info.mode = len(entry[1]), entry[2]
                    tar.addfile(info, io.BytesIO(entry[1]))
                else:
                    with open(entry[1], "rb") as src:
                        info.size = os.fstat(src.fileno()).st_size
                        info.mode = entry[2]
                        tar.addfile(info, src)
        uncompressed.flush()
layer_digest = "sha256:" + compressed.hash.hexdigest()
layer_size = compressed.size
diff_id = "sha256:" + uncompressed.hash.hexdigest()
os.replace(tmp_layer, os.path.join(blobs, layer_digest.split(":")[1]))

def write_blob(obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest.split(":")[1]), "wb") as f:
        f.write(data)
    return digest, len(data), data

epoch = "1970-01-01T00:00:00Z"
config = {
    "architecture": arch,
    "os": "linux",
    "created": epoch,
    "config": {
        "User": "65532:65532",
        "Entrypoint": ["/usr/local/bin/signet"],
        "Cmd": ["serve"],
        "ExposedPorts": {"8443/tcp": {}, "8080/tcp": {}},
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
        "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.title": "signet"},
    },
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": epoch, "created_by": "scripts/build-image.sh"}],
}
config_digest, config_size, _ = write_blob(config)
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest, "size": layer_size}],
}
manifest_digest, manifest_size, manifest_bytes = write_blob(manifest)
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": manifest_digest, "size": manifest_size,
                   "platform": {"architecture": arch, "os": "linux"},
                   "annotations": {"org.opencontainers.image.ref.name": tag}}],
}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f, separators=(",", ":"), sort_keys=True)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
print(f"build-image: wrote OCI layout {out} (layer {layer_size} bytes compressed, {len(entries)} entries)",
      file=sys.stderr)

if push:
    # HOST[:PORT]/REPO:TAG; the host is what comes before the first slash.
    host, _, rest = push.partition("/")
    repo, sep, ref = rest.rpartition(":")
    if not host or not sep or not repo or not ref or "@" in rest:
        die(f"--push wants HOST[:PORT]/REPO:TAG, got {push!r}")
    base = f"{'http' if insecure else 'https'}://{host}"
    auth = {}
    if creds:
        auth = {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()}

    def request(method, url, data=None, headers=None, ok=(200, 201, 202)):
        req = urllib.request.Request(url, data=data, method=method, headers={**auth, **(headers or {})})
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, resp.headers
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return e.code, e.headers
            body = e.read(2048).decode("utf-8", "replace")
            die(f"{method} {url}: HTTP {e.code}: {body.strip()}")
        except urllib.error.URLError as e:
            die(f"{method} {url}: {e.reason}")

    def push_blob(digest):
        path = os.path.join(blobs, digest.split(":")[1])
        status, _ = request("HEAD", f"{base}/v2/{repo}/blobs/{digest}", ok=(200, 404))
        if status == 200:
            return
        _, headers = request("POST", f"{base}/v2/{repo}/blobs/uploads/", data=b"")
        location = urllib.parse.urljoin(base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        with open(path, "rb") as f:
            data = f.read()
        request("PUT", f"{location}{sep}digest={digest}", data=data,
                headers={"Content-Type": "application/octet-stream"})

    push_blob(layer_digest)
    push_blob(config_digest)
    _, headers = request("PUT", f"{base}/v2/{repo}/manifests/{ref}", data=manifest_bytes,
                         headers={"Content-Type": manifest["mediaType"]})
    got = headers.get("Docker-Content-Digest")
    if got and got != manifest_digest:
        die(f"the registry computed {got} for the manifest, expected {manifest_digest}")
    print(f"build-image: pushed {host}/{repo}:{ref}@{manifest_digest}", file=sys.stderr)

print(manifest_digest)
PY
