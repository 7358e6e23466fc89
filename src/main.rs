//! The `signet` binary: parse, configure, log, run.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: a hit allocates and frees a few dozen small buffers on two threads; glibc's
/// malloc spent a tenth of a hit's instructions on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One crypto provider for every TLS and signature path; install it before anything uses TLS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = signet::cli::Args::parse();
    let format = args.log_format;
    let writer = match args.command {
        signet::cli::Command::Serve(_) => signet::telemetry::Writer::Background,
        _ => signet::telemetry::Writer::Direct,
    };
    let log = signet::telemetry::init(format, signet::config::ansi_wanted(), writer);
    let code = run(args);
    // Every exit comes back here (nothing calls `process::exit`): write out the queued lines.
    drop(log);
    code
}

fn run(args: signet::cli::Args) -> ExitCode {
    let config = match signet::config::Config::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("signet: {e}");
            return signet::exit(signet::EXIT_USAGE);
        }
    };
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(signet::run(config)),
        Err(e) => {
            eprintln!("signet: cannot start the runtime: {e}");
            signet::exit(signet::EXIT_USAGE)
        }
    }
}
