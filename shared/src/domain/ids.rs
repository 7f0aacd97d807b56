//! Validated identifiers, parsed once at the edge and trusted everywhere inside.
//!
//! A value of one of these types has passed its check; nothing downstream re-checks it. The
//! store relies on [`KEY_SEPARATOR`] never appearing inside an identifier.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The byte the embedded store puts between the parts of a composite key. Every identifier
/// type below rejects control characters, so this can never occur inside one.
pub const KEY_SEPARATOR: char = '\u{1f}';

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if check(&value) {
                    Ok(Self(value))
                } else {
                    Err(Error::invalid_request(concat!("Invalid ", $what, ".")))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn no_control_chars(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

/// Between 1 and `max` bytes of UTF-8 (`é` is two, `名` three). Bytes, not characters: a
/// user id and an idempotency key travel inside a sealed challenge id, which is bounded in
/// bytes (1,024, [`ChallengeId`]), and in DynamoDB keys, bounded in bytes too.
fn bytes_between(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len())
}

/// ASCII only, so its length in bytes is its length in characters.
fn code_chars(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

string_id!(
    /// A tenant id: `[A-Za-z0-9_-]{1,64}`. It travels in tenant Basic auth (spec 3.1) and in
    /// the token's `kid`, so it is kept to characters that need no escaping anywhere.
    TenantId,
    "tenant id",
    |v| code_chars(v, 64)
);

string_id!(
    /// The customer's own user id: any text of 1 to 255 bytes (UTF-8) without control
    /// characters (SDKs percent-encode it in paths, spec 2.2).
    UserId,
    "userId",
    |v| bytes_between(v, 255) && no_control_chars(v)
);

string_id!(
    /// An action code, `^[a-zA-Z0-9_-]{1,64}$` (spec 2.2, docs track-action).
    ActionCode,
    "action code: it must match ^[a-zA-Z0-9_-]{1,64}$",
    |v| code_chars(v, 64)
);

string_id!(
    /// A caller-supplied or generated idempotency key: 1 to 128 bytes (UTF-8), no control
    /// characters, no `/` (it is a path segment in spec 2.5).
    IdempotencyKey,
    "idempotencyKey: 1 to 128 bytes (UTF-8) without '/' or control characters",
    |v| bytes_between(v, 128) && no_control_chars(v) && !v.contains('/')
);

string_id!(
    /// A challenge id: `c1.<payload>.<mac>`, base64url parts, sealed by the tenant's key (see
    /// [`crate::token::TenantKeys::seal_challenge`]). The mobile SDKs treat it as opaque text
    /// to sign (spec 4.4).
    ChallengeId,
    "challengeId",
    |v| {
        v.len() <= 1024
            && v.strip_prefix("c1.").is_some_and(|rest| {
                let parts: Vec<&str> = rest.split('.').collect();
                parts.len() == 2
                    && parts.iter().all(|p| {
                        !p.is_empty()
                            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
            })
    }
);

impl ChallengeId {
    /// Hex SHA-256 of the id: the store's key for the challenge's single-use mark.
    pub fn fingerprint(&self) -> String {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.0.as_bytes(),
        ))
    }
}

string_id!(
    /// A credential's `userAuthenticatorId`, a UUID we generate.
    CredentialId,
    "userAuthenticatorId",
    |v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_codes_follow_the_documented_pattern() {
        assert!(ActionCode::parse("signIn").is_ok());
        assert!(ActionCode::parse("add-authenticator_2").is_ok());
        assert!(ActionCode::parse("").is_err());
        assert!(ActionCode::parse("a".repeat(65)).is_err());
        assert!(ActionCode::parse("sign in").is_err());
        assert!(ActionCode::parse("signIn\u{1f}x").is_err());
    }

    #[test]
    fn user_ids_accept_any_text_but_control_characters() {
        assert!(UserId::parse("dc58c6dc-a1fd-4a4f-8e2f-846636dd4833").is_ok());
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("名前 with spaces/and slash").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\u{1f}b").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("x".repeat(256)).is_err());
    }

    /// The limits are in bytes of UTF-8, as documented: 85 three-byte characters (255 bytes)
    /// are a user id, 86 (258 bytes) are not, although they are far fewer than 255
    /// characters; likewise 128 bytes for an idempotency key.
    #[test]
    fn length_limits_count_utf8_bytes() {
        assert!(UserId::parse("名".repeat(85)).is_ok());
        assert!(UserId::parse("名".repeat(86)).is_err());
        assert!(UserId::parse("😀".repeat(63)).is_ok());
        assert!(UserId::parse("😀".repeat(64)).is_err());
        assert!(IdempotencyKey::parse("é".repeat(64)).is_ok());
        assert!(IdempotencyKey::parse("é".repeat(65)).is_err());
        assert!(IdempotencyKey::parse("x".repeat(128)).is_ok());
        // The code-like ids are ASCII only: a non-ASCII character is refused, whatever the count.
        assert!(ActionCode::parse("é").is_err());
        assert!(TenantId::parse("é").is_err());
    }

    #[test]
    fn challenge_ids_are_sealed_shaped() {
        assert!(ChallengeId::parse("c1.eyJ0IjoiYSJ9.bWFj").is_ok());
        assert!(ChallengeId::parse("c2.eyJ0IjoiYSJ9.bWFj").is_err());
        assert!(ChallengeId::parse("c1.eyJ0IjoiYSJ9").is_err());
        assert!(ChallengeId::parse("c1..bWFj").is_err());
        assert!(ChallengeId::parse("c1.a+b.bWFj").is_err());
        assert!(ChallengeId::parse(format!("c1.{}.x", "a".repeat(1024))).is_err());
        let id = ChallengeId::parse("c1.eyJ0IjoiYSJ9.bWFj").unwrap();
        assert_eq!(id.fingerprint().len(), 64);
    }

    #[test]
    fn ids_deserialize_through_their_check() {
        let ok: Result<ActionCode, _> = serde_json::from_str("\"signIn\"");
        assert!(ok.is_ok());
        let bad: Result<ActionCode, _> = serde_json::from_str("\"sign in\"");
        assert!(bad.is_err());
    }
}
