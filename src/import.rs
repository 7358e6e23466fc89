//! Converters from other admission systems' configuration to signet policies.
//!
//! Each converter is a pure function (configuration text in, policy YAML and a report out) so
//! that it can be tested without files or processes; [`ratify_command`] is the thin
//! `signet import ratify` around it. Imports `policy` only, to validate what it emits (globs,
//! keys, certificates, Notation verification levels) with the loader's own parsers.

pub mod ratify;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::policy::Mode;
use crate::{EXIT_UNTRUSTED, EXIT_USAGE, exit};

/// `signet import ratify`: converts the Ratify resources in `files` (`-` for standard input),
/// writes the policies to `out_dir` (one file each) or to standard output, and the report to
/// standard error. Exits 1 when something security-relevant could not be carried over, 2 on
/// unreadable input or files it would overwrite without `force`.
pub fn ratify_command(
    files: &[PathBuf],
    out_dir: Option<&Path>,
    mode: Mode,
    force: bool,
) -> ExitCode {
    let mut inputs = Vec::with_capacity(files.len());
    for f in files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(f)
        };
        match text {
            Ok(t) => inputs.push((f.display().to_string(), t)),
            Err(e) => {
                eprintln!("signet import ratify: cannot read {}: {e}", f.display());
                return exit(EXIT_USAGE);
            }
        }
    }
    let conversion = match ratify::convert(&inputs, &ratify::Options { mode }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("signet import ratify: {e}");
            return exit(EXIT_USAGE);
        }
    };
    let written = match out_dir {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(conversion.to_yaml_stream().as_bytes())
                .map_err(WriteError::Stdout)
        }
        Some(dir) => write_dir(&conversion, dir, force),
    };
    if let Err(e) = written {
        eprintln!("signet import ratify: {e}");
        return exit(EXIT_USAGE);
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{}", conversion.report());
    exit(if conversion.dropped() {
        EXIT_UNTRUSTED
    } else {
        0
    })
}

/// Why the converted policies could not be written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("cannot create {}: {source}", .dir.display())]
    Create {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("would overwrite {} (use --force to replace them)", .0.join(", "))]
    WouldOverwrite(Vec<String>),
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes one file per document into `dir` (created if missing). Refuses, before writing
/// anything, to replace existing files unless `force`.
fn write_dir(conversion: &ratify::Conversion, dir: &Path, force: bool) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Create {
        dir: dir.to_path_buf(),
        source,
    })?;
    let paths: Vec<PathBuf> = conversion
        .outputs
        .iter()
        .map(|o| dir.join(format!("{}.yaml", o.file_stem)))
        .collect();
    if !force {
        let existing: Vec<String> = paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(WriteError::WouldOverwrite(existing));
        }
    }
    for (o, path) in conversion.outputs.iter().zip(&paths) {
        std::fs::write(path, &o.yaml).map_err(|source| WriteError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
