# signet's container image. Built in CI with a container builder; scripts/build-image.sh
# assembles the same runtime filesystem and config without a container daemon, from a binary
# built by `cargo build --release --locked` (the test suite builds and verifies it that way).
#
#   docker build -t REGISTRY/signet:TAG .
#
# Runtime contract (manifests/deployment.yaml relies on it):
#   /usr/local/bin/signet   the binary (Entrypoint), default command `serve`
#   user 65532:65532        non-root ("nonroot" in /etc/passwd)
#   8443/tcp                webhook HTTPS (--listen), 8080/tcp admin HTTP (--admin-listen)
#   /etc/signet/tls         tls.crt + tls.key (mounted Secret)
#   /etc/signet/policies    policy files (mounted ConfigMap)
#   /etc/ssl/certs/ca-certificates.crt   system roots for registry TLS

# ---- builder: the same Debian release (glibc) as the runtime image ----
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
# Manifests first so the dependency download is cached between source edits.
COPY Cargo.toml Cargo.lock ./
# Every target the manifest names must exist for cargo to read it (benches/examples in bench/).
COPY bench ./bench
# The workspace's other member (the dev-only test kit) must exist for cargo to read the workspace.
COPY crates ./crates
COPY src ./src
RUN cargo build --release --locked --bin signet \
 && install -D -m 0755 target/release/signet /out/usr/local/bin/signet

# ---- runtime: glibc, libgcc_s, CA certificates, /etc/passwd with nonroot (65532), no shell ----
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/usr/local/bin/signet /usr/local/bin/signet
USER 65532:65532
EXPOSE 8443/tcp 8080/tcp
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/usr/local/bin/signet"]
CMD ["serve"]
