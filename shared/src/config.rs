//! Settings, read once at start-up.

use crate::token::DEFAULT_TOKEN_LIFETIME_SECONDS;

/// Lifetimes and limits of the service. The defaults are the documented behaviour; the local
/// server and (later) the Lambda functions read overrides from the environment once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Lifetime of every issued token (spec 5: 10 minutes).
    pub token_lifetime_seconds: i64,
    /// Lifetime of an in-app challenge from `POST /client/challenge`: long enough for a
    /// biometric prompt, short enough that a leaked id is soon useless.
    pub challenge_lifetime_seconds: i64,
    /// Failed signatures counted per challenge; past them further *invalid* signatures get
    /// 429 until the challenge expires, while the right one still succeeds (DESIGN 6: a bad
    /// signature never ends or rejects a live challenge).
    pub max_failed_attempts: u32,
    /// How long actions are kept; the query API looks back at most this far (spec 2.5).
    pub action_retention_days: i64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of a push challenge: a person has to notice the notification and decide.
    pub push_challenge_lifetime_seconds: i64,
    /// Lifetime of a QR-code challenge. The browser SDK renews its QR code every 9 minutes by
    /// default, so a code must outlive that (spec 3.4.7).
    pub qr_challenge_lifetime_seconds: i64,
    /// Push starts allowed per user within `push_start_window_seconds`; more get 429
    /// (anti push-bombing, DESIGN 6).
    pub push_starts_per_window: u32,
    pub push_start_window_seconds: i64,
    /// How long a `push.created` webhook may take before the start fails (spec 2.11).
    pub webhook_timeout_ms: u64,
    /// A push credential expires this long after it is added or its expiry is reset
    /// (spec 3.4.5: `PATCH .../push` with `resetExpiry`); an expired one gets no challenges.
    pub push_credential_lifetime_days: i64,
    /// The fixed window of the per-address and per-tenant rate limits below (DESIGN 6:
    /// every write that needs no secret and no token is rate-limited).
    pub rate_limit_window_seconds: i64,
    /// Anonymous QR-code starts (tenant Basic) per source address per window.
    pub anonymous_qr_starts_per_source: u32,
    /// Anonymous QR codes a tenant may have alive at once: counted per QR lifetime window,
    /// half of it per window, so that two overlapping windows stay within it.
    pub anonymous_qr_live_cap: u32,
    /// Usernameless passkey sign-in options (tenant Basic) per source address per window.
    pub anonymous_passkey_options_per_source: u32,
    /// Usernameless passkey ceremonies a tenant may have alive at once (as the QR cap).
    pub anonymous_passkey_live_cap: u32,
    /// Failed device signatures (any route) per source address per window.
    pub failed_signatures_per_source: u32,
    /// Failed device signatures (any route) per tenant per window.
    pub failed_signatures_per_tenant: u32,
    /// Actions a device creates without a token (in-app verify with tenant Basic, spec
    /// 3.4.4) per credential per hour.
    pub device_actions_per_credential_per_hour: u32,
    /// How many counters a tenant-wide limit is split into (no hot item, DESIGN 4).
    pub rate_limit_shards: u32,
    /// Where track's `url` points: the pre-built UI of this deployment (issue #16).
    pub public_url: PublicUrl,
}

/// The variable that fixes the public base URL (the local server's `--public-url`, the
/// template's `PublicUrl` parameter).
pub const PUBLIC_URL_VARIABLE: &str = "TRUSTED_DEVICE_PUBLIC_URL";

/// The API's base URL as browsers reach it, for the pre-built UI's address in track's `url`
/// (issue #16, spec 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicUrl {
    /// Configured: `https://auth.example/v1` (no trailing slash, no query or fragment).
    Fixed(String),
    /// `{scheme}://{Host}/v1` from the request: on AWS the API's own domain (or a custom
    /// domain), which API Gateway puts in `Host`.
    FromHost { scheme: &'static str },
}

impl Default for PublicUrl {
    fn default() -> Self {
        PublicUrl::FromHost { scheme: "https" }
    }
}

impl PublicUrl {
    /// Parses a configured base URL: absolute `http` or `https`, no query, fragment or user
    /// info; a trailing `/` is dropped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let refuse = || {
            format!(
                "the public URL must be the API's absolute http(s) base URL, like \
                 https://auth.example/v1, not {text:?}"
            )
        };
        let url = url::Url::parse(text.trim()).map_err(|_| refuse())?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none_or(str::is_empty)
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(refuse());
        }
        Ok(PublicUrl::Fixed(
            url.as_str().trim_end_matches('/').to_owned(),
        ))
    }

    /// The base URL for a request that arrived with this `Host`; `None` when it must come from
    /// the request and `Host` is missing or not a plain `host[:port]`.
    pub fn base(&self, host: Option<&str>) -> Option<String> {
        match self {
            PublicUrl::Fixed(url) => Some(url.clone()),
            PublicUrl::FromHost { scheme } => {
                let host = host?.trim();
                let plain = !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
                plain.then(|| format!("{scheme}://{host}/v1"))
            }
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_lifetime_seconds: DEFAULT_TOKEN_LIFETIME_SECONDS,
            challenge_lifetime_seconds: 300,
            max_failed_attempts: 5,
            action_retention_days: 30,
            max_body_bytes: 64 * 1024,
            push_challenge_lifetime_seconds: 300,
            qr_challenge_lifetime_seconds: 600,
            push_starts_per_window: 5,
            push_start_window_seconds: 600,
            webhook_timeout_ms: 5_000,
            push_credential_lifetime_days: 180,
            rate_limit_window_seconds: 60,
            anonymous_qr_starts_per_source: 30,
            anonymous_qr_live_cap: 2000,
            // A sign-in page with passkey autofill asks on every load: generous per address
            // (offices share one), and 10,000 live ceremonies (about 3 MB) per tenant.
            anonymous_passkey_options_per_source: 120,
            anonymous_passkey_live_cap: 10_000,
            failed_signatures_per_source: 30,
            failed_signatures_per_tenant: 1200,
            device_actions_per_credential_per_hour: 120,
            rate_limit_shards: 8,
            public_url: PublicUrl::default(),
        }
    }
}

impl Settings {
    /// Defaults, overridden by the `TRUSTED_DEVICE_*` variables of README's configuration
    /// table when set to positive integers (the local server and the Lambda functions).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Settings::from_env`] with the variables read through `lookup` (the tests give a map,
    /// so that they change no process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let read_positive = |name: &str| read_positive(name, lookup(name));
        let mut settings = Settings::default();
        if let Some(value) = read_positive("TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS")? {
            settings.token_lifetime_seconds = value;
        }
        if let Some(value) = read_positive("TRUSTED_DEVICE_CHALLENGE_LIFETIME_SECONDS")? {
            settings.challenge_lifetime_seconds = value;
        }
        let limits: [(&str, &mut u32); 9] = [
            (
                "TRUSTED_DEVICE_MAX_FAILED_SIGNATURES_PER_CHALLENGE",
                &mut settings.max_failed_attempts,
            ),
            (
                "TRUSTED_DEVICE_ANONYMOUS_QR_STARTS_PER_SOURCE",
                &mut settings.anonymous_qr_starts_per_source,
            ),
            (
                "TRUSTED_DEVICE_ANONYMOUS_QR_LIVE_CAP",
                &mut settings.anonymous_qr_live_cap,
            ),
            (
                "TRUSTED_DEVICE_ANONYMOUS_PASSKEY_OPTIONS_PER_SOURCE",
                &mut settings.anonymous_passkey_options_per_source,
            ),
            (
                "TRUSTED_DEVICE_ANONYMOUS_PASSKEY_LIVE_CAP",
                &mut settings.anonymous_passkey_live_cap,
            ),
            (
                "TRUSTED_DEVICE_FAILED_SIGNATURES_PER_SOURCE",
                &mut settings.failed_signatures_per_source,
            ),
            (
                "TRUSTED_DEVICE_FAILED_SIGNATURES_PER_TENANT",
                &mut settings.failed_signatures_per_tenant,
            ),
            (
                "TRUSTED_DEVICE_DEVICE_ACTIONS_PER_CREDENTIAL_PER_HOUR",
                &mut settings.device_actions_per_credential_per_hour,
            ),
            (
                "TRUSTED_DEVICE_RATE_LIMIT_SHARDS",
                &mut settings.rate_limit_shards,
            ),
        ];
        for (name, slot) in limits {
            if let Some(value) = read_positive(name)? {
                *slot = u32::try_from(value).map_err(|_| format!("{name} is too large"))?;
            }
        }
        if let Some(value) = read_positive("TRUSTED_DEVICE_RATE_LIMIT_WINDOW_SECONDS")? {
            settings.rate_limit_window_seconds = value;
        }
        if let Some(text) = lookup(PUBLIC_URL_VARIABLE).filter(|t| !t.trim().is_empty()) {
            settings.public_url =
                PublicUrl::parse(&text).map_err(|e| format!("{PUBLIC_URL_VARIABLE}: {e}"))?;
        }
        Ok(settings)
    }
}

/// Every variable [`Settings::from_lookup`] reads.
pub const ENV_VARIABLES: [&str; 12] = [
    "TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS",
    "TRUSTED_DEVICE_CHALLENGE_LIFETIME_SECONDS",
    "TRUSTED_DEVICE_MAX_FAILED_SIGNATURES_PER_CHALLENGE",
    "TRUSTED_DEVICE_ANONYMOUS_QR_STARTS_PER_SOURCE",
    "TRUSTED_DEVICE_ANONYMOUS_QR_LIVE_CAP",
    "TRUSTED_DEVICE_ANONYMOUS_PASSKEY_OPTIONS_PER_SOURCE",
    "TRUSTED_DEVICE_ANONYMOUS_PASSKEY_LIVE_CAP",
    "TRUSTED_DEVICE_FAILED_SIGNATURES_PER_SOURCE",
    "TRUSTED_DEVICE_FAILED_SIGNATURES_PER_TENANT",
    "TRUSTED_DEVICE_DEVICE_ACTIONS_PER_CREDENTIAL_PER_HOUR",
    "TRUSTED_DEVICE_RATE_LIMIT_SHARDS",
    "TRUSTED_DEVICE_RATE_LIMIT_WINDOW_SECONDS",
];

fn read_positive(name: &str, text: Option<String>) -> Result<Option<i64>, String> {
    match text {
        Some(text) => match text.trim().parse::<i64>() {
            Ok(value) if value > 0 => Ok(Some(value)),
            _ => Err(format!("{name} must be a positive integer, not {text:?}")),
        },
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_variable_gives_the_defaults() {
        assert_eq!(from(&[]), Ok(Settings::default()));
    }

    /// Each variable, set to a value no default has, lands in its own field.
    #[test]
    fn every_variable_is_read_into_its_field() {
        let pairs: Vec<(&str, String)> = ENV_VARIABLES
            .iter()
            .enumerate()
            .map(|(i, name)| (*name, format!(" {} ", 7001 + i)))
            .collect();
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let settings = from(&borrowed).unwrap();
        let read: Vec<i64> = vec![
            settings.token_lifetime_seconds,
            settings.challenge_lifetime_seconds,
            settings.max_failed_attempts.into(),
            settings.anonymous_qr_starts_per_source.into(),
            settings.anonymous_qr_live_cap.into(),
            settings.anonymous_passkey_options_per_source.into(),
            settings.anonymous_passkey_live_cap.into(),
            settings.failed_signatures_per_source.into(),
            settings.failed_signatures_per_tenant.into(),
            settings.device_actions_per_credential_per_hour.into(),
            settings.rate_limit_shards.into(),
            settings.rate_limit_window_seconds,
        ];
        assert_eq!(read, (7001..=7012).collect::<Vec<i64>>());
        // Nothing else moved.
        let defaults = Settings::default();
        assert_eq!(settings.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(
            settings.push_challenge_lifetime_seconds,
            defaults.push_challenge_lifetime_seconds
        );
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_variable_and_the_value() {
        for name in ENV_VARIABLES {
            for bad in ["0", "-5", "ten", "", "1.5", "1e3"] {
                let error = from(&[(name, bad)]).unwrap_err();
                assert_eq!(
                    error,
                    format!("{name} must be a positive integer, not {bad:?}")
                );
            }
        }
        let error = from(&[("TRUSTED_DEVICE_RATE_LIMIT_SHARDS", "4294967296")]).unwrap_err();
        assert_eq!(error, "TRUSTED_DEVICE_RATE_LIMIT_SHARDS is too large");
        assert!(from(&[("TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS", "99999999999")]).is_ok());
    }

    #[test]
    fn the_public_url_is_configured_or_taken_from_the_host() {
        let fixed = from(&[(PUBLIC_URL_VARIABLE, "https://auth.example/v1/")]).unwrap();
        assert_eq!(
            fixed.public_url.base(Some("evil.example")).as_deref(),
            Some("https://auth.example/v1")
        );
        let derived = from(&[]).unwrap().public_url;
        assert_eq!(
            derived
                .base(Some("abc.execute-api.eu-west-1.amazonaws.com"))
                .as_deref(),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/v1")
        );
        assert_eq!(derived.base(None), None);
        assert_eq!(derived.base(Some("a.example/x?y")), None);
        for bad in [
            "auth.example",
            "ftp://a.example",
            "https://a.example/?x=1",
            "https://u@a.example",
        ] {
            assert!(from(&[(PUBLIC_URL_VARIABLE, bad)]).is_err(), "{bad}");
        }
    }

    /// The README's configuration table names every variable read here.
    #[test]
    fn the_readme_lists_every_variable() {
        let readme = include_str!("../../README.md");
        for name in ENV_VARIABLES {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in README.md"
            );
        }
    }
}
