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

/// The log filter of `RUST_LOG` (default `info`). webauthn-rs-core logs malformed client
/// input at ERROR, with its bytes: a client could fill the error logs (and trip alerts) at
/// will. The refusal is in our request line with its error code, so the crate's own lines are
/// off unless `RUST_LOG` names it.
fn filter(rust_log: Option<&str>) -> EnvFilter {
    let filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if rust_log.is_some_and(|directives| directives.contains(WEBAUTHN_TARGET)) {
        return filter;
    }
    match format!("{WEBAUTHN_TARGET}=off").parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init(format: LogFormat) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webauthn_logs_are_off_unless_rust_log_names_them() {
        for rust_log in [None, Some("info"), Some("debug,hyper=warn")] {
            let shown = filter(rust_log).to_string();
            assert!(
                shown.contains("webauthn_rs_core=off"),
                "{rust_log:?}: {shown}"
            );
        }
        let named = filter(Some("info,webauthn_rs_core=debug")).to_string();
        assert!(!named.contains("webauthn_rs_core=off"), "{named}");
        assert!(named.contains("webauthn_rs_core=debug"), "{named}");
    }
}
