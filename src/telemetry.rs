//! Logging: plain or JSON lines on stderr, filtered by `RUST_LOG` (default `info`, with the
//! HTTP and TLS libraries quieter).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

const DEFAULT_FILTER: &str = "info,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn";

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}
