//! Refuses operator-chosen secrets that a leaked store would give away (issue #11).
//!
//! An API secret is stored as its SHA-256 (the Server API's Basic auth names no tenant, so the
//! stored value must be found from the secret alone: no per-tenant salt, and a slow hash would
//! cost every request with an unknown secret its full price). A fast hash is safe only for a
//! secret that cannot be guessed: the ones `tenant create` generates have 256 random bits.
//! So a secret an operator chooses must be about as hard to guess. Two checks:
//! - at least [`MIN_CHARS`] characters: 32 hex digits are 128 bits;
//! - no structure: zxcvbn (dictionary words, keyboard and digit sequences, repeats, dates)
//!   finds nothing that brings its estimate under [`MIN_GUESSES_LOG10`]. zxcvbn counts guesses
//!   in a `u64`, so its estimate stops at about 10^19.3: it tells "has a pattern" from "looks
//!   random", and the length does the rest.
//!
//! The same applies to a webhook signing secret, which signs what the tenant's backend trusts
//! (it is kept in the clear, since it signs: a guessable one lets anyone forge webhooks).
//!
//! What this cannot catch: a string that looks random but is not (a published hash, a famous
//! passphrase zxcvbn's dictionaries lack). The README and the error say to generate secrets.

/// Characters an operator-chosen secret needs at least.
pub const MIN_CHARS: usize = 32;

/// zxcvbn's estimate a secret must reach: its ceiling, so that no pattern it knows was found
/// (`sk_` and 32 sequential hex digits estimate at about 10^8).
pub const MIN_GUESSES_LOG10: f64 = 19.0;

/// How to make a secret that passes, for error messages.
pub const HOW_TO_GENERATE: &str = "generate one, e.g. `echo sk_$(openssl rand -hex 32)`, or let `trusted-device tenant create` make one";

/// `Ok` if `secret` is strong enough; otherwise a message naming `what` it is.
pub fn check(secret: &str, what: &str) -> Result<(), String> {
    let chars = secret.chars().count();
    if chars < MIN_CHARS {
        return Err(format!(
            "{what} is too short ({chars} characters; at least {MIN_CHARS} random ones are \
             needed): {HOW_TO_GENERATE}"
        ));
    }
    // zxcvbn's cost grows with the length; past this, length is not the problem.
    let sample: String = secret.chars().take(256).collect();
    let guesses_log10 = zxcvbn::zxcvbn(&sample, &[]).guesses_log10();
    if guesses_log10 >= MIN_GUESSES_LOG10 {
        Ok(())
    } else {
        Err(format!(
            "{what} has a guessable pattern (words, sequences or repeats: about \
             10^{guesses_log10:.0} guesses): {HOW_TO_GENERATE}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_secrets_are_refused_and_random_ones_pass() {
        for (weak, problem) in [
            ("sk_demo_0123456789abcdef", "too short"),
            ("passwordpassword1234", "too short"),
            ("5d41402abc4b2a76", "too short"),
            // 32 characters or more, each refused for its pattern, not its length.
            (
                "sk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "guessable pattern",
            ),
            ("sk_0123456789abcdef0123456789abcdef", "guessable pattern"),
            ("sk_passwordpasswordpasswordpassword", "guessable pattern"),
        ] {
            let refused = check(weak, "The secret key").unwrap_err();
            assert!(refused.contains(problem), "{weak}: {refused}");
            assert!(refused.contains("openssl rand"), "{refused}");
        }
        for strong in [
            // 32 random bytes, as `tenant create` and `openssl rand -hex 32` make them.
            "sk_3f9c1e0b7a5d48e2b6c09f1d7e3a5b8c2d4f6a8b0c1e3d5f7a9b1c3d5e7f9a0b",
            "sk_q2Vx9LmT4rB7nY1cK8wZ3pD6sF0hJ5gA2uE7iO4tR9yW",
            "whsec_node_compat_9b74c9897bac770ffc029102a200c5de",
        ] {
            check(strong, "The secret key").unwrap();
        }
    }
}
