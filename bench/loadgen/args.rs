//! The command line: the scenarios to run and their sizes, and the kinds of cold images.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::support::notary::Format;

#[derive(Parser)]
#[command(about = "signet benchmark scenarios; prints a markdown table")]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// The signet binary to drive (a release build).
    #[arg(long, default_value = "target/release/signet")]
    pub signet: PathBuf,
    /// Splits the CPUs: signet and the servers it is measured against (the echo server, nginx)
    /// on the first half, this process and everything else it starts (the registries, `wrk`,
    /// `h2load`) on the rest. The closest one machine gets to a client on another host.
    #[arg(long)]
    pub split_cpus: bool,
    /// Seconds per load point.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Small sizes everywhere (a smoke run of the whole suite in well under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Scenarios to run, comma-separated: limits,n,a,b,p,c,e,s,h,f,r,g,soak (p: HTTP/2 against
    /// HTTP/1.1; r: the replay on two replicas; `soak` is not in the default set: it takes
    /// `--soak-secs` and 10,000 connections).
    #[arg(long, default_value = "limits,n,a,b,p,c,e,s,h,f,r,g")]
    pub only: String,
    /// Seconds of hostile load in the soak (with `--quick`: 10).
    #[arg(long, default_value_t = 150.0)]
    pub soak_secs: f64,
    /// Idle TLS connections the soak holds (scaled down to the open-file limit).
    #[arg(long, default_value_t = 10_000)]
    pub soak_idle: usize,
    /// Normal reviews per second during the soak, every verdict checked.
    #[arg(long, default_value_t = 100.0)]
    pub soak_rate: f64,
    /// Slowloris connections (headers one byte a second) in the soak.
    #[arg(long, default_value_t = 200)]
    pub soak_slowloris: usize,
    /// Stalled 7 MiB bodies (2 MiB sent) held at once in the soak.
    #[arg(long, default_value_t = 64)]
    pub soak_stalled: usize,
    /// HTTP/2 connections flooding streams in the soak.
    #[arg(long, default_value_t = 8)]
    pub soak_h2: usize,
    /// Verdicts to cache for the memory figure (g).
    #[arg(long, default_value_t = 100_000)]
    pub verdicts: u64,
    /// Pods in the replay (f); each has 10 images.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Distinct images the replay's pods draw from (default: 2 per pod, at least 20); fixed
    /// apart from `--pods`, so that 10,000 pods need not push 20,000 images.
    #[arg(long)]
    pub pool: Option<usize>,
    /// New images verified at once in the storm scenario (s).
    #[arg(long, default_value_t = 200)]
    pub storm: usize,
    /// Restarts in the first-handshake scenario (h).
    #[arg(long, default_value_t = 5)]
    pub restarts: usize,
    /// A command to run signet under, e.g. `valgrind --tool=callgrind` (bench/README.md).
    #[arg(long)]
    pub signet_prefix: Option<String>,
    /// `RUST_LOG` for signet (unset: signet's default, one `info` line per review).
    #[arg(long)]
    pub signet_log: Option<String>,
    /// Fraction of registry requests the replay proxy answers 429, in per mille.
    #[arg(long, default_value_t = 100)]
    pub throttle_per_mille: u64,
    /// How the images of the cold scenario (c) are signed, comma-separated; one pair of rows
    /// (direct, through the counting proxy) each.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = ColdKind::ALL)]
    pub cold_kinds: Vec<ColdKind>,
}

/// How the images of scenario (c) are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColdKind {
    /// Cosign, P-256 key (the `.sig` tag).
    Cosign,
    /// Cosign keyless (the `.sig` tag): a Fulcio leaf per image, its SCT, a Rekor bundle.
    CosignKeyless,
    /// Notation JWS, root → intermediate → ES256 leaf, no revocation URLs.
    NotationJws,
    /// Notation COSE, the same chain.
    NotationCose,
    /// Notation JWS whose leaf names the local OCSP responder; a new leaf, with its own URL, per
    /// image, so that no image can reuse another's answer: one OCSP round trip per review.
    NotationJwsOcsp,
    /// Notation JWS, one leaf naming the OCSP responder for every image: signet's revocation
    /// cache (5 minutes) answers all but the first review.
    NotationJwsOcspShared,
}

impl ColdKind {
    pub const ALL: [ColdKind; 6] = [
        ColdKind::Cosign,
        ColdKind::CosignKeyless,
        ColdKind::NotationJws,
        ColdKind::NotationCose,
        ColdKind::NotationJwsOcsp,
        ColdKind::NotationJwsOcspShared,
    ];

    /// The envelope format, for the Notation kinds.
    pub fn notation(self) -> Option<Format> {
        match self {
            ColdKind::Cosign | ColdKind::CosignKeyless => None,
            ColdKind::NotationCose => Some(Format::Cose),
            ColdKind::NotationJws | ColdKind::NotationJwsOcsp | ColdKind::NotationJwsOcspShared => {
                Some(Format::Jws)
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ColdKind::Cosign => "Cosign key",
            ColdKind::CosignKeyless => "Cosign keyless (leaf per image, SCT, Rekor bundle)",
            ColdKind::NotationJws => "Notation JWS",
            ColdKind::NotationCose => "Notation COSE",
            ColdKind::NotationJwsOcsp => "Notation JWS, leaf per image naming an OCSP responder",
            ColdKind::NotationJwsOcspShared => {
                "Notation JWS, one leaf naming an OCSP responder for all images"
            }
        }
    }

    /// A short name for tags and repositories.
    pub fn slug(self) -> &'static str {
        match self {
            ColdKind::Cosign => "cosign",
            ColdKind::CosignKeyless => "keyless",
            ColdKind::NotationJws => "jws",
            ColdKind::NotationCose => "cose",
            ColdKind::NotationJwsOcsp => "jws-ocsp",
            ColdKind::NotationJwsOcspShared => "jws-ocsp-shared",
        }
    }
}

impl std::fmt::Display for ColdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

#[derive(Subcommand)]
pub enum Sub {
    /// An HTTPS echo server on signet's TLS stack (internal: the transport limit).
    EchoServer {
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long)]
        ca_out: PathBuf,
    },
}
