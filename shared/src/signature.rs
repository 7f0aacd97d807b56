//! Device signatures: ECDSA P-256 with SHA-256 over the UTF-8 bytes of a message (spec 4.4).
//!
//! Public keys are X.509 SubjectPublicKeyInfo DER of an uncompressed P-256 point, 91 bytes
//! (spec 4.2), parsed strictly: the fixed header, an uncompressed point, on the curve.
//! Signatures are DER `SEQUENCE { r, s }` in standard base64. High-S signatures are accepted
//! because neither iOS nor Android normalises S (spec 4.4).

use crate::encoding;
use crate::error::Error;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// The DER header iOS prefixes to the raw point: SEQUENCE { SEQUENCE { id-ecPublicKey,
/// prime256v1 }, BIT STRING (spec 4.2).
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P256_SPKI_LEN: usize = 91;

/// A DER ECDSA P-256 signature is at most 72 bytes; anything longer is refused before parsing.
const MAX_SIGNATURE_LEN: usize = 72;

/// The SPKI DER of an uncompressed P-256 point (`04 || X || Y`), as iOS builds it from
/// `SecKeyCopyExternalRepresentation` (spec 4.2). For clients and tests that hold a raw point.
pub fn p256_spki(uncompressed_point: &[u8]) -> Vec<u8> {
    let mut spki = Vec::with_capacity(P256_SPKI_LEN);
    spki.extend_from_slice(&P256_SPKI_HEADER);
    spki.extend_from_slice(uncompressed_point);
    spki
}

/// A parsed, validated P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicKey(..)")
    }
}

/// Why a public key was refused; each is one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("publicKey is not standard base64")]
    NotBase64,
    #[error("publicKey is not a P-256 SubjectPublicKeyInfo")]
    NotP256Spki,
    #[error("publicKey is not a point on the P-256 curve")]
    NotOnCurve,
}

impl From<PublicKeyError> for Error {
    fn from(error: PublicKeyError) -> Self {
        Error::invalid_request(format!("Invalid {error}."))
    }
}

impl PublicKey {
    /// Parses the standard-base64 SPKI of a request body (spec 4.2).
    pub fn from_base64(text: &str) -> Result<Self, PublicKeyError> {
        let der = encoding::decode_standard(text).ok_or(PublicKeyError::NotBase64)?;
        Self::from_spki_der(&der)
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, PublicKeyError> {
        if der.len() != P256_SPKI_LEN || der[..P256_SPKI_HEADER.len()] != P256_SPKI_HEADER {
            return Err(PublicKeyError::NotP256Spki);
        }
        let point = &der[P256_SPKI_HEADER.len()..];
        if point[0] != 0x04 {
            return Err(PublicKeyError::NotP256Spki);
        }
        if !is_on_curve(point) {
            return Err(PublicKeyError::NotOnCurve);
        }
        Ok(PublicKey {
            spki_der: der.to_vec(),
        })
    }

    /// The canonical standard base64 of the SPKI, as clients send it.
    pub fn to_base64(&self) -> String {
        encoding::encode_standard(&self.spki_der)
    }

    /// Hex SHA-256 of the SPKI DER: the store's lookup key for a credential.
    pub fn fingerprint(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &self.spki_der))
    }

    fn point(&self) -> &[u8] {
        &self.spki_der[P256_SPKI_HEADER.len()..]
    }

    /// Verifies a base64 DER signature over the UTF-8 bytes of `message`.
    pub fn verify(&self, message: &str, signature_base64: &str) -> Result<(), Error> {
        let signature = decode_signature(signature_base64)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.point())
            .verify(message.as_bytes(), &signature)
            .map_err(|_| Error::InvalidSignature)
    }
}

/// What a replay of a signature has in common with it: the signature's `r` (hex), which the
/// signature and its malleated twin `(r, n − s)` share. A fresh signature by the same key over
/// the same message has another `r` (a new random nonce; a deterministic signer, RFC 6979,
/// gives the same `r` only for the same message and key, which is then a replay to us too).
/// For a signature that verified, so its DER is well formed.
pub fn replay_id(signature_base64: &str) -> Result<String, Error> {
    let der = decode_signature(signature_base64)?;
    let signature = p256::ecdsa::Signature::from_der(&der).map_err(|_| {
        Error::invalid_request("Invalid signature: it is not a DER ECDSA P-256 signature.")
    })?;
    Ok(hex::encode(signature.r().to_bytes()))
}

/// Decodes a signature field: standard base64, at most 72 bytes of DER. A malformed encoding
/// is a bad request; a well-formed signature that does not verify is `InvalidSignature`.
fn decode_signature(text: &str) -> Result<Vec<u8>, Error> {
    let der = encoding::decode_standard(text)
        .ok_or_else(|| Error::invalid_request("Invalid signature: it is not standard base64."))?;
    if der.is_empty() || der.len() > MAX_SIGNATURE_LEN {
        return Err(Error::invalid_request(
            "Invalid signature: it is not a DER ECDSA P-256 signature.",
        ));
    }
    Ok(der)
}

/// Whether `04 || X || Y` is a point of P-256: both coordinates below the field prime and
/// `y² = x³ − 3x + b` (SEC 1, 2.3.4). The encoding cannot name the point at infinity.
///
/// Every verify request parses its key (spec 4.2), so this runs once per in-app flow. `p256`
/// checks the equation with a few field operations; ring's only complete check is an ECDH
/// with an ephemeral key, a scalar multiplication that cost as much as the signature verify
/// itself (docs/performance.md, "Server CPU per full in-app flow"). The two are compared in
/// this module's tests. ring checks the point again when it verifies a signature.
fn is_on_curve(uncompressed_point: &[u8]) -> bool {
    uncompressed_point.len() == 65
        && uncompressed_point[0] == 0x04
        && p256::PublicKey::from_sec1_bytes(uncompressed_point).is_ok()
}

/// The messages accepted for credential removal at `unix_seconds` (spec 4.4): the time window
/// `floor(t / 600)` formatted as the platforms format a double (`"2917345.0"`), also without
/// the `.0`, for the current window and one either side (clock skew, boundaries).
pub fn removal_window_messages(unix_seconds: i64) -> Vec<(i64, String)> {
    let window = unix_seconds.div_euclid(600);
    (window - 1..=window + 1)
        .flat_map(|w| [(w, format!("{w}.0")), (w, w.to_string())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors made once with Python `cryptography` from the fixed private scalar
    // c9afa9d8...0f6721 (the RFC 6979 P-256 test key); the script is in docs/test-vectors.md.
    const SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==";
    const MESSAGE: &str = "a3f1c0dea3f1c0dea3f1c0dea3f1c0dea3f1c0dea3f1c0dea3f1c0dea3f1c0de";
    const SIG_LOW_S: &str = "MEUCIQClkI8dTpCrYsEZGdfh6LOmAkfh0vfoQcC/3lKkcI7WSgIgKKFqgviVmqL6djHOI48AUsHmrmYJiuS9Wwf47l38SVs=";
    const SIG_HIGH_S: &str = "MEYCIQClkI8dTpCrYsEZGdfh6LOmAkfh0vfoQcC/3lKkcI7WSgIhANdelXwHamVeBYnOMdxw/6z7AExHnYy5x5ix0dSeZtv2";
    const OTHER_SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAhfmF/C2RDkoJ4+WmZ5pojpPLBUr321s32bluAKC1O0ZSn3ry5dxLS3aPKhaqHZaVvRfx1hZllLyiXxlMG5XlA==";
    const OTHER_SIG: &str = "MEYCIQCysWrVwZadJXZSCtPSMWU+ta/CgZFUlxPZoXjyBrA9jgIhAK5RajWoWZDeC0jJeuzLztYVecPrdO6hg5sqCdGGVgPa";
    const P384_SPKI: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEkTCoNCZq3B4pcczFGk3ygw6GXpa/MCZ22mE1PkpE5EC62D9HWZol8r6sz/0YmOFA+HqY8Im+KO++jFTohNCQRURatgKP1AuHTsgva0ohZjMHSCXFJ1tFEKsWgOLLwXLh";
    const WINDOW_SIG: &str = "MEUCIHCKUiu3UEwPsdt5e7ub+u5tk1oUTMp9kM/QQ4XviOUUAiEA9ahKRok31HQ/lZi+ssiP1cMqtnedxj+cNEuPYqUn3ik=";

    fn key() -> PublicKey {
        PublicKey::from_base64(SPKI).expect("fixed key parses")
    }

    #[test]
    fn known_answer_low_s_and_high_s_both_verify() {
        assert_eq!(key().verify(MESSAGE, SIG_LOW_S), Ok(()));
        assert_eq!(key().verify(MESSAGE, SIG_HIGH_S), Ok(()));
    }

    /// A signature and its malleated twin `(r, n − s)` share their replay id (their `r`, known
    /// answer); another signature has its own; a malformed one is a bad request.
    #[test]
    fn a_signature_and_its_malleated_twin_have_one_replay_id() {
        const R: &str = "a5908f1d4e90ab62c11919d7e1e8b3a60247e1d2f7e841c0bfde52a4708ed64a";
        assert_eq!(replay_id(SIG_LOW_S).as_deref(), Ok(R));
        assert_eq!(replay_id(SIG_HIGH_S).as_deref(), Ok(R));
        assert_ne!(replay_id(OTHER_SIG).as_deref(), Ok(R));
        assert!(matches!(replay_id("AAAA"), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn known_answer_time_window_message_verifies() {
        assert_eq!(key().verify("2917345.0", WINDOW_SIG), Ok(()));
        assert_eq!(
            key().verify("2917345", WINDOW_SIG),
            Err(Error::InvalidSignature)
        );
    }

    #[test]
    fn tampered_message_or_signature_is_refused() {
        let mut tampered_message = MESSAGE.to_owned();
        tampered_message.replace_range(0..1, "b");
        assert_eq!(
            key().verify(&tampered_message, SIG_LOW_S),
            Err(Error::InvalidSignature)
        );

        let mut der = encoding::decode_standard(SIG_LOW_S).unwrap();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let flipped = encoding::encode_standard(&der);
        assert_eq!(
            key().verify(MESSAGE, &flipped),
            Err(Error::InvalidSignature)
        );

        // A raw r||s (64 bytes, not DER) is not accepted.
        let raw = encoding::encode_standard(&[7u8; 64]);
        assert_eq!(key().verify(MESSAGE, &raw), Err(Error::InvalidSignature));
    }

    #[test]
    fn signature_by_another_key_is_refused() {
        let other = PublicKey::from_base64(OTHER_SPKI).unwrap();
        assert_eq!(other.verify(MESSAGE, OTHER_SIG), Ok(()));
        assert_eq!(
            key().verify(MESSAGE, OTHER_SIG),
            Err(Error::InvalidSignature)
        );
    }

    #[test]
    fn malformed_signature_encodings_are_bad_requests() {
        for bad in [
            "",
            "not base64!",
            "YWI",
            &encoding::encode_standard(&[0u8; 73]),
        ] {
            let error = key().verify(MESSAGE, bad).unwrap_err();
            assert!(
                matches!(error, Error::InvalidRequest(_)),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn spki_parsing_rejects_wrong_curve_garbage_and_off_curve_points() {
        assert_eq!(
            PublicKey::from_base64(P384_SPKI),
            Err(PublicKeyError::NotP256Spki)
        );
        assert_eq!(
            PublicKey::from_base64("garbage!"),
            Err(PublicKeyError::NotBase64)
        );
        assert_eq!(
            PublicKey::from_base64(&encoding::encode_standard(b"0123456789")),
            Err(PublicKeyError::NotP256Spki)
        );
        // The right header with a point that is not on the curve.
        let mut der = encoding::decode_standard(SPKI).unwrap();
        der[90] ^= 0x01;
        assert_eq!(
            PublicKey::from_spki_der(&der),
            Err(PublicKeyError::NotOnCurve)
        );
        // A compressed-point marker is refused: the platforms send uncompressed points.
        let mut der = encoding::decode_standard(SPKI).unwrap();
        der[26] = 0x02;
        assert_eq!(
            PublicKey::from_spki_der(&der),
            Err(PublicKeyError::NotP256Spki)
        );
        // URL-safe base64 is not accepted in a body field.
        let url_safe = SPKI.replace('+', "-").replace('/', "_");
        assert_eq!(
            PublicKey::from_base64(&url_safe),
            Err(PublicKeyError::NotBase64)
        );
    }

    /// ring's complete point check, the one [`is_on_curve`] replaced: an ECDH with an
    /// ephemeral key, which refuses any peer point that is not on the curve.
    fn ring_accepts_point(uncompressed_point: &[u8]) -> bool {
        use ring::agreement;
        let rng = ring::rand::SystemRandom::new();
        let ours = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
        let theirs = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, uncompressed_point);
        agreement::agree_ephemeral(ours, &theirs, |_| ()).is_ok()
    }

    fn point(x: &str, y: &str) -> Vec<u8> {
        let mut point = vec![0x04];
        point.extend(hex::decode(x).unwrap());
        point.extend(hex::decode(y).unwrap());
        point
    }

    // Known answers, computed once with Python integers from the curve's constants (SEC 2):
    // y = sqrt(x³ − 3x + b) mod p for small x, and the negation p − y of the fixed key's y.
    const P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
    const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    const Y_AT_X0: &str = "66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4";
    const X5: &str = "0000000000000000000000000000000000000000000000000000000000000005";
    const X5_PLUS_P: &str = "ffffffff00000001000000000000000000000001000000000000000000000004";
    const Y_AT_X5: &str = "459243b9aa581806fe913bce99817ade11ca503c64d9a3c533415c083248fbcc";
    const FIXED_X: &str = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
    const FIXED_MINUS_Y: &str = "86fc01eef74743675be51616a9d7439b0d0e4df4d28160ae885c3d6b2bb9dd66";

    #[test]
    fn known_answer_points_on_and_off_the_curve() {
        let cases = [
            ("x = 0", point(ZERO, Y_AT_X0), true),
            ("x = 5", point(X5, Y_AT_X5), true),
            (
                "the fixed key's negation",
                point(FIXED_X, FIXED_MINUS_Y),
                true,
            ),
            // The same points with x written as x + p: not a canonical field element.
            ("x = p, which is 0 mod p", point(P, Y_AT_X0), false),
            ("x = 5 + p", point(X5_PLUS_P, Y_AT_X5), false),
            (
                "y + 1",
                point(
                    X5,
                    "459243b9aa581806fe913bce99817ade11ca503c64d9a3c533415c083248fbcd",
                ),
                false,
            ),
            ("(0, 0)", point(ZERO, ZERO), false),
        ];
        for (name, point, on_curve) in cases {
            assert_eq!(is_on_curve(&point), on_curve, "{name}");
            assert_eq!(ring_accepts_point(&point), on_curve, "ring, {name}");
            let parsed = PublicKey::from_spki_der(&p256_spki(&point));
            assert_eq!(parsed.is_ok(), on_curve, "{name}");
        }
    }

    #[test]
    fn the_on_curve_check_agrees_with_rings_ecdh_check() {
        use ring::rand::SecureRandom;
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        for round in 0..200 {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let real = pair.public_key().as_ref().to_vec();
            assert!(is_on_curve(&real), "round {round}: a generated key");
            // One coordinate byte changed: off the curve but for a chance of about 2^-255.
            let mut changed = real.clone();
            changed[1 + round % 64] ^= 1 << (round % 8);
            // Random coordinates: off the curve but for a chance of about 2^-128.
            let mut random = vec![0x04; 65];
            rng.fill(&mut random[1..]).unwrap();
            for candidate in [real, changed, random] {
                assert_eq!(
                    is_on_curve(&candidate),
                    ring_accepts_point(&candidate),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn canonical_encoding_and_fingerprint_are_stable() {
        assert_eq!(key().to_base64(), SPKI);
        assert_eq!(key().fingerprint().len(), 64);
        assert_ne!(
            key().fingerprint(),
            PublicKey::from_base64(OTHER_SPKI).unwrap().fingerprint()
        );
    }

    #[test]
    fn removal_windows_cover_skew_and_both_formats() {
        let at = 2_917_345 * 600 + 10;
        let messages: Vec<String> = removal_window_messages(at)
            .into_iter()
            .map(|m| m.1)
            .collect();
        for expected in ["2917344.0", "2917345.0", "2917346.0", "2917345"] {
            assert!(messages.iter().any(|m| m == expected), "{expected}");
        }
        assert!(!messages.iter().any(|m| m == "2917347.0"));
    }
}
