//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) run as a
//! child process on a free loopback port, its storage in a temporary directory.
//!
//! Surprises worth knowing:
//! - it has no referrers API (`support::oci` maintains the `sha256-<hex>` referrers tag schema);
//! - a GET/HEAD of an OCI manifest is a 404 unless `Accept` names the OCI media types
//!   (`support::oci::MANIFEST_ACCEPT`);
//! - Basic auth needs bcrypt htpasswd entries (`htpasswd -Bbn`).
//!
//! When `docker-registry` is not installed the tests fail (never skip) and say how to install it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::token::TokenServer;

/// Where the fix is when the registry binary is missing.
const INSTALL_HINT: &str = "docker-registry is not installed (or SIGNET_TEST_DOCKER_REGISTRY \
     names a missing file): run scripts/install-test-deps.sh (as root) first";

/// How long a fresh registry may take to answer `GET /v2/` (it normally takes well under 1 s).
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A TLS server certificate for `127.0.0.1` and `localhost`, issued by a fresh test CA.
#[derive(Clone, Debug)]
pub struct TestTls {
    /// The CA certificate clients must trust.
    pub ca_pem: String,
    /// The server certificate (leaf only).
    pub cert_pem: String,
    /// The server's private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl TestTls {
    /// Makes a CA and a server certificate for `127.0.0.1` and `localhost` with rcgen.
    pub fn generate() -> TestTls {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };

        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "signet test registry CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("generate server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "signet test registry");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).expect("sign server cert");

        TestTls {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Options for [`TestRegistry`]; start with [`TestRegistry::builder`].
#[derive(Default)]
pub struct RegistryBuilder {
    tls: Option<(String, String)>,
    ca_pem: Option<String>,
    htpasswd: Option<(String, String)>,
    token: Option<(String, String)>,
    storage: Option<PathBuf>,
}

impl RegistryBuilder {
    /// Serve HTTPS with this certificate chain and key (PEM). [`TestRegistry::ca_pem`] is then
    /// `None` unless [`RegistryBuilder::ca`] names the CA.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls = Some((cert_pem.to_owned(), key_pem.to_owned()));
        self
    }

    /// The CA that issued the certificate given to [`RegistryBuilder::tls`], for
    /// [`TestRegistry::ca_pem`] and [`TestRegistry::client`].
    pub fn ca(mut self, ca_pem: &str) -> Self {
        self.ca_pem = Some(ca_pem.to_owned());
        self
    }

    /// Serve HTTPS with a fresh [`TestTls`] (CA + certificate for 127.0.0.1).
    pub fn test_tls(self) -> Self {
        let tls = TestTls::generate();
        self.tls(&tls.cert_pem, &tls.key_pem).ca(&tls.ca_pem)
    }

    /// Require HTTP Basic auth with this one user (bcrypt entry made by `htpasswd -Bbn`).
    pub fn htpasswd(mut self, user: &str, password: &str) -> Self {
        self.htpasswd = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Require Bearer tokens from a [`TokenServer`] started with the registry, which issues
    /// them to this one user (Basic credentials on the token request). Replaces
    /// [`RegistryBuilder::htpasswd`].
    pub fn token_auth(mut self, user: &str, password: &str) -> Self {
        self.token = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Use this storage directory instead of a private one, e.g. another registry's
    /// [`TestRegistry::storage_dir`]: several processes can serve the same content (one plain
    /// HTTP, one TLS). The directory is not deleted by this registry.
    pub fn storage_dir(mut self, dir: &Path) -> Self {
        self.storage = Some(dir.to_owned());
        self
    }

    /// Starts the registry and waits until `GET /v2/` answers. Panics (failing the test) when
    /// `docker-registry` is missing or does not come up.
    pub fn start(self) -> TestRegistry {
        let binary = find_binary().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let dir = tempfile::Builder::new()
            .prefix("signet-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let storage = match &self.storage {
            Some(dir) => dir.clone(),
            None => {
                let storage = dir.path().join("storage");
                std::fs::create_dir(&storage).expect("create storage dir");
                storage
            }
        };
        let tls_paths = self.tls.as_ref().map(|(cert, key)| {
            let cert_path = dir.path().join("registry.crt");
            let key_path = dir.path().join("registry.key");
            std::fs::write(&cert_path, cert).expect("write TLS cert");
            std::fs::write(&key_path, key).expect("write TLS key");
            (cert_path, key_path)
        });
        let htpasswd_path = self.htpasswd.as_ref().map(|(user, password)| {
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd_entry(user, password)).expect("write htpasswd");
            path
        });

        let token = self
            .token
            .as_ref()
            .map(|(user, password)| TokenServer::start(user, password));
        let token_config = token.as_ref().map(|server| {
            let path = dir.path().join("token-root.pem");
            std::fs::write(&path, server.minter().cert_pem()).expect("write token root");
            (server.realm(), path)
        });
        let htpasswd_path = if token.is_some() { None } else { htpasswd_path };

        let mut registry = TestRegistry {
            binary,
            config: dir.path().join("config.yml"),
            log: dir.path().join("registry.log"),
            storage,
            port: 0,
            tls: tls_paths.is_some(),
            ca_pem: self.ca_pem,
            credentials: self.token.clone().or(self.htpasswd),
            token,
            child: None,
            _dir: dir,
        };

        // A port found free can be taken before the registry binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            registry.port = port;
            let config = config_yaml(
                port,
                &registry.storage,
                tls_paths.as_ref(),
                htpasswd_path.as_deref(),
                token_config.as_ref(),
            );
            std::fs::write(&registry.config, config).expect("write registry config");
            match registry.spawn() {
                Ok(()) => return registry,
                Err(SpawnError::PortTaken) => continue,
            }
        }
        panic!(
            "docker-registry could not bind a free port after 5 attempts; log:\n{}",
            registry.log()
        );
    }
}

/// A registry tests push to and point signet at: the real `docker-registry`
/// ([`TestRegistry`]) or the in-process one ([`crate::memory::MemoryRegistry`]).
pub trait Endpoint {
    /// `127.0.0.1:PORT`: the registry host as it appears in image references.
    fn addr(&self) -> String;
    /// The CA PEM clients must trust; `None` for plain HTTP.
    fn ca_pem(&self) -> Option<&str>;
    /// A pusher with the registry's credentials, if any.
    fn pusher(&self) -> crate::oci::Pusher;
    /// `HOST/REPO` for image references in this registry.
    fn repo_ref(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr())
    }
}

impl Endpoint for TestRegistry {
    fn addr(&self) -> String {
        TestRegistry::addr(self)
    }
    fn ca_pem(&self) -> Option<&str> {
        TestRegistry::ca_pem(self)
    }
    fn pusher(&self) -> crate::oci::Pusher {
        TestRegistry::pusher(self)
    }
}

impl Endpoint for crate::memory::MemoryRegistry {
    fn addr(&self) -> String {
        crate::memory::MemoryRegistry::addr(self)
    }
    fn ca_pem(&self) -> Option<&str> {
        None
    }
    fn pusher(&self) -> crate::oci::Pusher {
        crate::memory::MemoryRegistry::pusher(self)
    }
}

/// A running `docker-registry serve` process, killed on drop.
pub struct TestRegistry {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    storage: PathBuf,
    port: u16,
    tls: bool,
    ca_pem: Option<String>,
    credentials: Option<(String, String)>,
    /// The token server of a token-auth registry (it outlives the process: `Drop` stops the
    /// process first).
    token: Option<TokenServer>,
    child: Option<Child>,
    /// Config, storage (unless shared), TLS files, htpasswd and log; removed on drop.
    _dir: TempDir,
}

enum SpawnError {
    PortTaken,
}

impl TestRegistry {
    /// A plain-HTTP registry without auth.
    pub fn start() -> TestRegistry {
        Self::builder().start()
    }

    /// Options: TLS, htpasswd, shared storage.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// `"127.0.0.1:PORT"`: the registry host as it appears in image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on (stable across [`TestRegistry::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The CA PEM that clients must trust (`Some` after [`RegistryBuilder::test_tls`] or
    /// [`RegistryBuilder::ca`]).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The user and password, when it requires them (Basic auth with htpasswd, or the token
    /// server's credentials with token auth).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The token server, for [`RegistryBuilder::token_auth`] registries.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The storage root directory (to share with another registry, or to inspect).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// `HOST/REPO` for image references in this registry, e.g. `127.0.0.1:5000/team/app`.
    pub fn repo_ref(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr())
    }

    /// A reqwest client that trusts [`TestRegistry::ca_pem`] only and ignores proxies. It sends
    /// no credentials by itself.
    pub fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20));
        if let Some(ca) = &self.ca_pem {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes()).expect("parse CA PEM");
            builder = builder.tls_certs_only([cert]);
        }
        builder.build().expect("build reqwest client")
    }

    /// An OCI pusher/reader for this registry, with its credentials if any.
    pub fn pusher(&self) -> crate::oci::Pusher {
        crate::oci::Pusher::new(self)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process: the port then refuses connections (for onError / registry-down
    /// tests). Content on disk stays for [`TestRegistry::restart`]. A client with a pooled
    /// keep-alive connection sees the kill as an incomplete message or reset, not as a refused
    /// connection.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process if running and starts it again on the same port and storage, then
    /// waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; a stray connection may hold it briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(SpawnError::PortTaken) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(SpawnError::PortTaken) => panic!(
                    "docker-registry could not re-bind port {} on restart; log:\n{}",
                    self.port,
                    self.log()
                ),
            }
        }
    }

    /// The process's stdout and stderr so far (every start appends).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), SpawnError> {
        let log_len_before = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open registry log");
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        // distribution lets REGISTRY_* variables override any config field (REGISTRY_HTTP_ADDR,
        // REGISTRY_AUTH, ...): the config file alone must decide.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        let child = command.spawn().unwrap_or_else(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                panic!("{INSTALL_HINT}");
            }
            panic!("spawn {}: {err}", self.binary.display())
        });
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("child just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let log = self.log();
                let this_run = log.get(log_len_before as usize..).unwrap_or(&log);
                if this_run.contains("address already in use") {
                    return Err(SpawnError::PortTaken);
                }
                panic!("docker-registry exited ({status}) before answering; log:\n{this_run}");
            }
            if probe(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                panic!(
                    "docker-registry did not answer GET /v2/ on port {} within {:?}; log:\n{}",
                    self.port,
                    READY_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET /v2/` over plain TCP answers with any HTTP status line. A TLS listener answers a
/// plaintext request too (Go replies `400 ... HTTP request to an HTTPS server`), so one probe
/// serves both modes and needs no trust configuration.
fn probe(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    head[..read].starts_with(b"HTTP/1.")
}

/// A port that was free a moment ago (bind to :0, read, release).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Environment variable naming another `docker-registry` binary (e.g. a newer distribution
/// build); when set, only that path is tried.
pub const BINARY_ENV: &str = "SIGNET_TEST_DOCKER_REGISTRY";

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("docker-registry"))
        .find(|candidate| candidate.is_file())
}

/// A bcrypt htpasswd line from `htpasswd -Bbn` (the registry accepts only bcrypt).
fn htpasswd_entry(user: &str, password: &str) -> String {
    let output = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "htpasswd (apache2-utils) not runnable ({err}): run scripts/install-test-deps.sh"
            )
        });
    assert!(
        output.status.success(),
        "htpasswd -Bbn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("htpasswd output is UTF-8")
}

fn config_yaml(
    port: u16,
    storage: &Path,
    tls: Option<&(PathBuf, PathBuf)>,
    htpasswd: Option<&Path>,
    token: Option<&(String, PathBuf)>,
) -> String {
    // Paths are temp dirs without quotes or newlines; JSON strings are valid YAML scalars.
    let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).expect("quote path");
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  \
         # shared by every test registry so several processes can serve one storage dir\n  \
         secret: signet-test-registry-secret\n",
        storage = quote(storage),
    );
    if let Some((cert, key)) = tls {
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            quote(cert),
            quote(key)
        ));
    }
    if let Some(path) = htpasswd {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: signet-test\n    path: {}\n",
            quote(path)
        ));
    }
    if let Some((realm, root)) = token {
        config.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            serde_json::to_string(realm).expect("quote realm"),
            crate::token::SERVICE,
            crate::token::ISSUER,
            quote(root)
        ));
    }
    config
}
