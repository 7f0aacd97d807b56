//! Property tests of the parsers that take untrusted input (issue #11): tokens (spec 5), sealed
//! challenge ids (DESIGN 6), public keys in bodies and queries (spec 4.2, 4.3), signatures
//! (spec 4.4), and the lenient decoders (spec 3.1). Each takes any input without panicking
//! and answers with the precise error the contract gives it; altered valid input is refused.
//!
//! 256 cases per property by default (seconds in CI); `PROPTEST_CASES=100000` runs longer.

use crate::clock::Timestamp;
use crate::domain::{
    ActionCode, ActionKey, ChallengeId, ChallengeTarget, IdempotencyKey, SigningKeyRecord,
    TenantId, UserId,
};
use crate::encoding;
use crate::error::Error;
use crate::http::error::Describe as _;
use crate::signature::{PublicKey, PublicKeyError};
use crate::token::{self, TenantKeys, TokenRequest};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use std::sync::LazyLock;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

static KEYS: LazyLock<TenantKeys> = LazyLock::new(|| {
    let record = SigningKeyRecord {
        kid: "k1".into(),
        secret: encoding::encode_standard(&[7u8; 32]),
        created_at: None,
        retire_at: None,
    };
    TenantKeys::new(&TenantId::parse("tenant-p").unwrap(), &[record]).unwrap()
});

fn action() -> ActionKey {
    ActionKey {
        user_id: UserId::parse("user-1").unwrap(),
        action_code: ActionCode::parse("signIn").unwrap(),
        idempotency_key: IdempotencyKey::parse("idem-1").unwrap(),
    }
}

static TOKEN: LazyLock<String> = LazyLock::new(|| {
    KEYS.issue(
        TokenRequest {
            redirect_url: None,
            redirect_to_settings: false,
            action: &action(),
            scope: Some("add:authenticators"),
            username: None,
            jti: "jti-1",
        },
        NOW,
        token::DEFAULT_TOKEN_LIFETIME_SECONDS,
    )
});

static CHALLENGE: LazyLock<ChallengeId> = LazyLock::new(|| {
    KEYS.seal_challenge(
        &ChallengeTarget::TrackedAction(action()),
        Some("nonce".into()),
        NOW,
        0,
        Timestamp(NOW.0 + 300_000),
        [9; 16],
    )
    .unwrap()
    .id
});

/// A device key pair, as the phones make them.
static DEVICE: LazyLock<EcdsaKeyPair> = LazyLock::new(|| {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("a key pair");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .expect("its own key pair")
});

fn device_spki() -> Vec<u8> {
    crate::signature::p256_spki(DEVICE.public_key().as_ref())
}

fn sign(message: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    STANDARD.encode(DEVICE.sign(&rng, message.as_bytes()).unwrap().as_ref())
}

/// Replaces the character at `index` (modulo the length) by `replacement`.
fn altered(text: &str, index: usize, replacement: char) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = index % chars.len();
    chars[at] = replacement;
    chars.into_iter().collect()
}

/// Text that looks like a JWT or a sealed id: dot-separated base64url of arbitrary bytes or
/// JSON, so that the parsers get past their first checks.
fn dotted_parts() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        json_text().prop_map(|j| URL_SAFE_NO_PAD.encode(j)),
        "[A-Za-z0-9_=+/-]{0,40}",
    ];
    proptest::collection::vec(part, 1..5).prop_map(|parts| parts.join("."))
}

/// JSON with the keys the token and challenge payloads use, and values of any type.
fn json_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::json!({"tenantId": "tenant-p", "userId": "user-1"})),
    ];
    let key = prop_oneof![
        Just("alg"),
        Just("kid"),
        Just("typ"),
        Just("sub"),
        Just("aud"),
        Just("exp"),
        Just("iat"),
        Just("other"),
        Just("scope"),
        Just("t"),
        Just("e"),
        Just("r"),
        Just("u"),
        Just("c"),
        Just("k"),
        Just("p"),
    ];
    proptest::collection::btree_map(key, value, 0..8)
        .prop_map(|map| serde_json::to_string(&map).unwrap())
}

/// What a strict percent-decoder must answer, written out by hand (the decoder that
/// `encoding::percent_decode` replaced with the `percent-encoding` crate): `None` when any `%`
/// is not followed by two hex digits or the result is not UTF-8, else the decoded text.
fn percent_decode_oracle(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
            out.push(digit(hex[0])? * 16 + digit(hex[1])?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

proptest! {
    // ------------------------------------------------------------ tokens (spec 5)

    #[test]
    fn any_text_as_a_token_is_refused_without_panicking(text in prop_oneof![".{0,200}", dotted_parts()]) {
        let _ = token::claimed_tenant(&text);
        let result = KEYS.verify(&text, NOW);
        prop_assert!(
            matches!(result, Err(Error::InvalidToken | Error::ExpiredToken)),
            "{text:?}: {result:?}"
        );
    }

    #[test]
    fn a_token_with_any_character_changed_is_refused(
        index in any::<usize>(),
        replacement in prop_oneof![proptest::char::range('A', 'z'), any::<char>()],
    ) {
        let token = TOKEN.as_str();
        let changed = altered(token, index, replacement);
        prop_assume!(changed != token);
        prop_assert_eq!(KEYS.verify(&changed, NOW).err(), Some(Error::InvalidToken));
    }

    // ------------------------------------------------------------ sealed challenge ids

    #[test]
    fn any_text_as_a_challenge_id_is_not_found_or_invalid(
        text in prop_oneof![".{0,200}", dotted_parts(), dotted_parts().prop_map(|t| format!("c1.{t}"))],
    ) {
        match ChallengeId::parse(text.clone()) {
            Err(error) => prop_assert_eq!(error.code(), "invalid_request"),
            Ok(id) => {
                let result = KEYS.open_challenge(&id);
                prop_assert!(matches!(result, Err(Error::ChallengeNotFound)), "{text:?}: {result:?}");
            }
        }
    }

    #[test]
    fn a_sealed_challenge_id_with_any_character_changed_does_not_open(
        index in any::<usize>(),
        replacement in prop_oneof![proptest::char::range('-', 'z'), any::<char>()],
    ) {
        let sealed = CHALLENGE.as_str();
        let changed = altered(sealed, index, replacement);
        prop_assume!(changed != sealed);
        if let Ok(id) = ChallengeId::parse(changed) {
            prop_assert!(KEYS.open_challenge(&id).is_err());
        }
    }

    // ------------------------------------------------------------ public keys (spec 4.2, 4.3)

    #[test]
    fn any_text_as_a_body_public_key_is_a_precise_refusal(text in ".{0,200}") {
        let result = PublicKey::from_base64(&text);
        prop_assert!(result.is_err(), "{text:?}");
        let error: Error = result.unwrap_err().into();
        prop_assert_eq!(error.code(), "invalid_request");
    }

    #[test]
    fn any_bytes_as_an_spki_are_parsed_strictly(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..128),
            // The right header and length, any point: on the curve only by (no) chance.
            proptest::collection::vec(any::<u8>(), 64..=64).prop_map(|xy| {
                let mut point = vec![4];
                point.extend(xy);
                crate::signature::p256_spki(&point)
            }),
        ],
    ) {
        let result = PublicKey::from_spki_der(&bytes);
        prop_assert!(result.is_err());
        let encoded = PublicKey::from_base64(&STANDARD.encode(&bytes));
        prop_assert_eq!(encoded.err(), result.err());
    }

    #[test]
    fn a_device_key_with_any_byte_changed_is_refused(index in 0usize..91, flip in 1u8..=255) {
        let mut spki = device_spki();
        spki[index] ^= flip;
        let result = PublicKey::from_spki_der(&spki);
        // 26 header bytes and the point tag: not an SPKI; coordinates: not on the curve.
        let expected = if index <= 26 { PublicKeyError::NotP256Spki } else { PublicKeyError::NotOnCurve };
        prop_assert_eq!(result.err(), Some(expected));
    }

    #[test]
    fn a_query_public_key_decodes_in_every_client_encoding(variant in 0usize..5, junk in ".{0,80}") {
        // Spec 4.3: base64 (either alphabet, padding optional) of the standard base64 SPKI;
        // a raw `+` arrives as a space after the query parser.
        let inner = STANDARD.encode(device_spki());
        let outer = match variant {
            0 => URL_SAFE_NO_PAD.encode(&inner),
            1 => URL_SAFE.encode(&inner),
            2 => STANDARD.encode(&inner),
            3 => STANDARD_NO_PAD.encode(&inner),
            _ => STANDARD.encode(&inner).replace('+', " "),
        };
        let decoded = encoding::public_key_from_query(&outer);
        prop_assert_eq!(decoded.as_deref(), Some(inner.as_str()));
        // Any other text: no panic, and never a key that is not the one sent.
        if let Some(text) = encoding::public_key_from_query(&junk) {
            let _ = PublicKey::from_base64(&text);
        }
    }

    // ------------------------------------------------------------ signatures (spec 4.4)

    #[test]
    fn any_signature_text_is_invalid_request_or_invalid_signature(
        text in prop_oneof![
            ".{0,120}",
            proptest::collection::vec(any::<u8>(), 0..100).prop_map(|b| STANDARD.encode(b)),
        ],
    ) {
        let key = PublicKey::from_spki_der(&device_spki()).unwrap();
        let result = key.verify("a message", &text);
        prop_assert!(
            matches!(&result, Err(Error::InvalidSignature | Error::InvalidRequest(_))),
            "{text:?}: {result:?}"
        );
    }

    #[test]
    fn a_signature_verifies_only_its_own_message(message in ".{0,64}", other in ".{0,64}") {
        let key = PublicKey::from_spki_der(&device_spki()).unwrap();
        let signature = sign(&message);
        prop_assert!(key.verify(&message, &signature).is_ok());
        if other != message {
            prop_assert_eq!(key.verify(&other, &signature).err(), Some(Error::InvalidSignature));
        }
    }

    // ------------------------------------------------------------ lenient decoders (spec 3.1)

    #[test]
    fn percent_decoding_accepts_exactly_two_hex_digits(
        text in prop_oneof![".{0,40}", "([a-z]|%[0-9a-fA-F+ -]{0,3}){0,12}"],
    ) {
        prop_assert_eq!(encoding::percent_decode(&text), percent_decode_oracle(&text));
    }

    #[test]
    fn basic_credentials_of_any_text_never_panic(text in ".{0,120}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        for credentials in [text.clone(), STANDARD.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes)] {
            if let Some(id) = encoding::tenant_id_from_basic(&credentials) {
                prop_assert!(!id.is_empty() && !id.contains(':'));
            }
            if let Some(secret) = encoding::secret_from_basic(&credentials) {
                prop_assert!(!secret.is_empty() && !secret.contains(':'));
            }
        }
    }

    #[test]
    fn lenient_base64_reads_both_alphabets_with_or_without_padding(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        for text in [STANDARD.encode(&bytes), STANDARD_NO_PAD.encode(&bytes), URL_SAFE.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes)] {
            prop_assert_eq!(encoding::decode_lenient(&text), Some(bytes.clone()));
        }
    }
}
