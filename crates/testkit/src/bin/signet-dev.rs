//! `signet-dev`: a small signing tool for trying signet without cosign, notation, docker or a
//! cluster. It is not part of the verifier and shares no code with it: it signs with signet's
//! test kit (the same signers the test suite checks signet against) and pushes to a registry
//! over plain HTTP, such as Debian's `docker-registry` on loopback.
//!
//! - `keygen`: a Cosign key pair (`cosign.key`, unencrypted PKCS#8; `cosign.pub`).
//! - `notation-ca`: a Notation test CA (root, intermediate, code-signing leaf).
//! - `push-demo-image`: a tiny single-layer image, new content each time.
//! - `sign cosign`: what `cosign sign --key` (tag storage) writes.
//! - `sign notation`: a Notation JWS or COSE signature from a generated test CA, pushed as an
//!   OCI 1.1 referrer (through the referrers tag schema, which every registry serves).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use signet_testkit::cosign::{self, CosignKey, SignatureLayer};
use signet_testkit::notary::{ChainSpec, Format, SigningChain};
use signet_testkit::oci::{PushedImage, Pusher};

/// A signing tool for trying signet: makes test keys and a test CA, pushes a demo image and
/// signs images in a plain-HTTP registry (e.g. docker-registry on 127.0.0.1). For trying signet
/// only: the keys are unencrypted and the CA is a throwaway.
#[derive(Parser)]
#[command(name = "signet-dev", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a Cosign key pair (ECDSA P-256, cosign's default): DIR/cosign.key (unencrypted
    /// PKCS#8 PEM) and DIR/cosign.pub (the public key a policy trusts).
    Keygen {
        /// Directory to write into (created if absent); existing keys are not overwritten.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Make a Notation test CA in DIR: a root (DIR/ca.pem, the certificate a policy's `ca`
    /// trust store names), an intermediate and a code-signing leaf, with their keys.
    /// `sign notation` makes one on first use too.
    NotationCa {
        /// Directory to write into (created if absent); an existing CA is kept.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Push a tiny image (one layer, new content each time) to HOST[:PORT]/REPO:TAG and print
    /// its digest reference.
    PushDemoImage {
        /// HOST[:PORT]/REPO[:TAG] (tag `latest` when absent).
        image: String,
    },
    /// Sign an image in the registry and push the signature next to it.
    #[command(subcommand)]
    Sign(Sign),
}

#[derive(Subcommand)]
enum Sign {
    /// Sign like `cosign sign --key KEY IMAGE` (tag storage): a simple-signing payload naming
    /// HOST/REPO and the digest, signed with KEY, added to the `sha256-<hex>.sig` manifest.
    Cosign {
        /// The private key (`signet-dev keygen` writes cosign.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// HOST[:PORT]/REPO[:TAG|@DIGEST].
        image: String,
    },
    /// Sign like `notation sign`: a Notation signature (notary.x509 scheme) by a leaf of a test
    /// CA, pushed as an OCI 1.1 referrer. The CA is made in DIR on first use (DIR/ca.pem is
    /// the certificate a policy's `ca` trust store names) and reused afterwards.
    Notation {
        /// Directory of the test CA: ca.pem, intermediate.pem, leaf.pem and their keys.
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// The envelope format.
        #[arg(long, value_enum, default_value_t = Envelope::Jws)]
        envelope: Envelope,
        /// HOST[:PORT]/REPO[:TAG|@DIGEST].
        image: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Envelope {
    Jws,
    Cose,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("signet-dev: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    match args.command {
        Command::Keygen { out } => keygen(&out),
        Command::NotationCa { out } => {
            if out.join("ca.pem").exists() {
                return Err(format!(
                    "{} exists; not overwriting it",
                    out.join("ca.pem").display()
                ));
            }
            load_or_make_chain(&out).map(|_| ())
        }
        Command::PushDemoImage { image } => {
            let image = ImageName::parse(&image)?;
            if image.reference.contains(':') {
                return Err(format!(
                    "push-demo-image pushes by tag, not by digest ({})",
                    image.reference
                ));
            }
            let pusher = connect(&image.host).await?;
            let seed = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|err| err.to_string())?
                .as_nanos() as u64;
            let pushed = pusher.push_image(&image.repo, &image.reference, seed).await;
            println!("{}", pushed.reference_by_digest(&image.host));
            Ok(())
        }
        Command::Sign(Sign::Cosign { key, image }) => {
            let pem =
                std::fs::read_to_string(&key).map_err(|err| format!("{}: {err}", key.display()))?;
            let key_pair = CosignKey::from_private_key_pem(&pem)
                .map_err(|err| format!("{}: {err}", key.display()))?;
            let image = ImageName::parse(&image)?;
            let pusher = connect(&image.host).await?;
            let pushed = fetch(&pusher, &image).await?;
            let payload = cosign::simple_signing_payload(
                &format!("{}/{}", image.host, image.repo),
                &pushed.digest,
            );
            let layer = SignatureLayer::signed(payload, &key_pair);
            let manifest = cosign::push_signature_layers(
                &pusher,
                &image.repo,
                &pushed.digest,
                vec![layer],
                true,
            )
            .await;
            println!(
                "signed {} with the Cosign key {} (signature tag {})",
                pushed.reference_by_digest(&image.host),
                key.display(),
                manifest.tag
            );
            Ok(())
        }
        Command::Sign(Sign::Notation {
            ca_dir,
            envelope,
            image,
        }) => {
            let chain = load_or_make_chain(&ca_dir)?;
            let image = ImageName::parse(&image)?;
            let pusher = connect(&image.host).await?;
            let pushed = fetch(&pusher, &image).await?;
            let format = match envelope {
                Envelope::Jws => Format::Jws,
                Envelope::Cose => Format::Cose,
            };
            let signature = chain.sign_and_push(&pusher, &pushed, format, None).await;
            println!(
                "signed {} with Notation ({}, signature {signature}); trust {} in the policy",
                pushed.reference_by_digest(&image.host),
                format.name().to_uppercase(),
                ca_dir.join("ca.pem").display()
            );
            Ok(())
        }
    }
}

fn keygen(out: &Path) -> Result<(), String> {
    let (private, public) = (out.join("cosign.key"), out.join("cosign.pub"));
    for path in [&private, &public] {
        if path.exists() {
            return Err(format!("{} exists; not overwriting it", path.display()));
        }
    }
    std::fs::create_dir_all(out).map_err(|err| format!("{}: {err}", out.display()))?;
    let key = CosignKey::p256();
    // Readable by its owner only, as cosign writes cosign.key.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .and_then(|mut file| file.write_all(key.private_key_pem().as_bytes()))
        .map_err(|err| format!("{}: {err}", private.display()))?;
    std::fs::write(&public, key.public_key_pem())
        .map_err(|err| format!("{}: {err}", public.display()))?;
    println!(
        "wrote {} (private, unencrypted) and {} (public)",
        private.display(),
        public.display()
    );
    Ok(())
}

fn load_or_make_chain(dir: &Path) -> Result<SigningChain, String> {
    if dir.join("ca.pem").exists() {
        return SigningChain::read_from(dir);
    }
    let chain = SigningChain::new(&ChainSpec::default());
    chain
        .write_to(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?;
    eprintln!(
        "made a test CA in {} (root certificate: {})",
        dir.display(),
        dir.join("ca.pem").display()
    );
    Ok(chain)
}

/// A pusher for `host`, after checking that a registry answers there over plain HTTP.
async fn connect(host: &str) -> Result<Pusher, String> {
    let pusher = Pusher::plain_http(host);
    let response = pusher
        .request(reqwest::Method::GET, "/v2/")
        .send()
        .await
        .map_err(|err| {
            format!("no registry answers at http://{host}/v2/ ({err}); is docker-registry running?")
        })?;
    match response.status().as_u16() {
        200 => Ok(pusher),
        401 => Err(format!(
            "the registry at {host} asks for credentials; signet-dev pushes only to open registries"
        )),
        status => Err(format!(
            "http://{host}/v2/ answered {status}, not a registry"
        )),
    }
}

async fn fetch(pusher: &Pusher, image: &ImageName) -> Result<PushedImage, String> {
    pusher
        .fetch_image(&image.repo, &image.reference)
        .await
        .ok_or_else(|| {
            format!(
                "{}/{} has no manifest {} (push it first, e.g. signet-dev push-demo-image)",
                image.host, image.repo, image.reference
            )
        })
}

/// `HOST[:PORT]/REPO[:TAG|@DIGEST]`, the registry named explicitly.
struct ImageName {
    host: String,
    repo: String,
    /// A tag or a digest.
    reference: String,
}

impl ImageName {
    fn parse(text: &str) -> Result<ImageName, String> {
        let usage = || {
            format!("{text:?} is not HOST[:PORT]/REPO[:TAG|@DIGEST] (the registry must be named)")
        };
        let (host, rest) = text.split_once('/').ok_or_else(usage)?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(usage());
        }
        let (repo, reference) = match rest.split_once('@') {
            Some((repo, digest)) => (repo, digest),
            None => match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag),
                _ => (rest, "latest"),
            },
        };
        let valid_repo = !repo.is_empty()
            && repo.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !valid_repo || reference.is_empty() {
            return Err(usage());
        }
        Ok(ImageName {
            host: host.to_owned(),
            repo: repo.to_owned(),
            reference: reference.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ImageName;

    #[test]
    fn image_names_need_a_registry_and_default_to_latest() {
        let name = ImageName::parse("127.0.0.1:5000/demo/app").unwrap();
        assert_eq!(
            (
                name.host.as_str(),
                name.repo.as_str(),
                name.reference.as_str()
            ),
            ("127.0.0.1:5000", "demo/app", "latest")
        );
        let name = ImageName::parse("localhost:5000/app@sha256:ab").unwrap();
        assert_eq!(
            (name.repo.as_str(), name.reference.as_str()),
            ("app", "sha256:ab")
        );
        let name = ImageName::parse("registry.example.com/team/app:1.0").unwrap();
        assert_eq!(
            (name.repo.as_str(), name.reference.as_str()),
            ("team/app", "1.0")
        );
        for bad in [
            "nginx",
            "team/app:1.0",
            "127.0.0.1:5000/",
            "127.0.0.1:5000/App",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }
}
