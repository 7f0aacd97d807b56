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
    /// Failed signatures after which a challenge is ended (DESIGN 6).
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
        }
    }
}

impl Settings {
    /// Defaults, overridden by `TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS` and
    /// `TRUSTED_DEVICE_CHALLENGE_LIFETIME_SECONDS` when set to positive integers.
    pub fn from_env() -> Result<Self, String> {
        let mut settings = Settings::default();
        if let Some(value) = read_positive("TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS")? {
            settings.token_lifetime_seconds = value;
        }
        if let Some(value) = read_positive("TRUSTED_DEVICE_CHALLENGE_LIFETIME_SECONDS")? {
            settings.challenge_lifetime_seconds = value;
        }
        Ok(settings)
    }
}

fn read_positive(name: &str) -> Result<Option<i64>, String> {
    match std::env::var(name) {
        Ok(text) => match text.trim().parse::<i64>() {
            Ok(value) if value > 0 => Ok(Some(value)),
            _ => Err(format!(
                "{name} must be a positive number of seconds, not {text:?}"
            )),
        },
        Err(_) => Ok(None),
    }
}
