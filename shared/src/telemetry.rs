//! Logging: one line per request (written by [`crate::http`]'s middleware), JSON or text,
//! filtered by `RUST_LOG`. Nothing logged carries a secret, token, key or signature: the
//! request line holds the route template, never the raw path or query.

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines (CloudWatch, Loki, ...).
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// The log target of kanidm's WebAuthn library.
const WEBAUTHN_TARGET: &str = "webauthn_rs_core";

/// Installs the global subscriber once; later calls do nothing.
pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // webauthn-rs-core logs malformed client input at ERROR, with its bytes: a client could
    // fill the error logs (and trip alerts) at will. The refusal is in our request line with
    // its error code, so the crate's own lines are off unless RUST_LOG names it.
    let names_webauthn = std::env::var("RUST_LOG").is_ok_and(|v| v.contains(WEBAUTHN_TARGET));
    if !names_webauthn && let Ok(quiet) = format!("{WEBAUTHN_TARGET}=off").parse() {
        filter = filter.add_directive(quiet);
    }
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}
