//! Base64 as the clients send it: strict by default, lenient exactly where the spec says
//! clients differ (tenant Basic auth, spec 3.1; the double-encoded `?publicKey=`, spec 4.3).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Standard base64 with padding, nothing else (body `publicKey` and `signature`, spec 4.2, 4.4).
pub fn decode_standard(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

pub fn encode_standard(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn encode_url_safe(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Either alphabet, padding optional: what iOS (base64url, no padding), Android (standard,
/// padded) and the browser (standard) each send (spec 3.1, 4.3).
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    STANDARD_NO_PAD.decode(normalized).ok()
}

/// Percent-decodes a URL component (`%41` → `A`); `None` if an escape is malformed (a `%` not
/// followed by two hex digits) or the result is not UTF-8. `+` is left alone: it is data here,
/// not a space. The `percent-encoding` crate decodes; it leaves a malformed escape as it is, so
/// the escapes are checked here first.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    // Two hex digits exactly after every `%` (`from_str_radix` would also take a sign: `%+a`).
    let well_formed = bytes.iter().enumerate().all(|(i, byte)| {
        *byte != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// A version-4 UUID, hyphenated and lowercase, from 16 random bytes the caller drew (from
/// ring: the randomness stays ours); the `uuid` crate sets the version and variant bits.
pub fn uuid_v4(random_bytes: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(random_bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The tenant id in a client `Authorization: Basic` value (spec 3.1): lenient base64, then
/// URL-decoding (the browser encodes the id with `encodeURIComponent`), then everything from
/// the first `:` on is dropped (iOS and Android send `"<tenantId>:"`).
pub fn tenant_id_from_basic(credentials: &str) -> Option<String> {
    let decoded = String::from_utf8(decode_lenient(credentials.trim())?).ok()?;
    let decoded = percent_decode(&decoded)?;
    let id = decoded.split(':').next().unwrap_or_default();
    (!id.is_empty()).then(|| id.to_owned())
}

/// The API secret in a server `Authorization: Basic` value: `base64("<secret>:")` in standard
/// base64 with padding, as all seven server SDKs send it (spec 2.1).
pub fn secret_from_basic(credentials: &str) -> Option<String> {
    let decoded = String::from_utf8(decode_standard(credentials.trim())?).ok()?;
    let (secret, _password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    (!secret.is_empty()).then(|| secret.to_owned())
}

/// The SPKI base64 inside a `?publicKey=` value (spec 4.3). The value arrives already
/// percent-decoded by the query parser, which also turned any raw `+` (Android sends standard
/// base64 unescaped) into a space: spaces become `+` again before the lenient decode.
pub fn public_key_from_query(value: &str) -> Option<String> {
    let repaired = value.replace(' ', "+");
    let inner = String::from_utf8(decode_lenient(&repaired)?).ok()?;
    inner.is_ascii().then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "3f9a2b1c-0d4e-4f5a-8b6c-7d8e9f0a1b2c";

    #[test]
    fn tenant_basic_in_all_three_client_encodings() {
        // iOS: base64url without padding of "<id>:".
        let ios = URL_SAFE_NO_PAD.encode(format!("{TENANT}:"));
        // Android: standard base64 with padding of "<id>:".
        let android = STANDARD.encode(format!("{TENANT}:"));
        // Browser: standard base64 of encodeURIComponent(id), no colon.
        let browser = STANDARD.encode(TENANT);
        for encoded in [ios, android, browser] {
            assert_eq!(
                tenant_id_from_basic(&encoded).as_deref(),
                Some(TENANT),
                "{encoded}"
            );
        }
    }

    #[test]
    fn tenant_basic_url_decodes_what_the_browser_escaped() {
        let browser = STANDARD.encode("tenant%5Fone");
        assert_eq!(
            tenant_id_from_basic(&browser).as_deref(),
            Some("tenant_one")
        );
    }

    #[test]
    fn tenant_basic_rejects_garbage_and_empty_ids() {
        assert_eq!(tenant_id_from_basic("!!!not base64!!!"), None);
        assert_eq!(tenant_id_from_basic(&STANDARD.encode(":")), None);
        assert_eq!(tenant_id_from_basic(""), None);
    }

    #[test]
    fn secret_basic_is_standard_base64_of_secret_colon() {
        assert_eq!(
            secret_from_basic(&STANDARD.encode("sk_live_abc:")).as_deref(),
            Some("sk_live_abc")
        );
        assert_eq!(
            secret_from_basic(&STANDARD.encode("sk_no_colon")).as_deref(),
            Some("sk_no_colon")
        );
        assert_eq!(secret_from_basic(&STANDARD.encode(":")), None);
        assert_eq!(secret_from_basic("%%%"), None);
    }

    #[test]
    fn public_key_query_in_ios_and_android_encodings() {
        // A standard base64 SPKI string with '+', '/' and '=' in it.
        let spki_b64 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==";
        let ios = URL_SAFE_NO_PAD.encode(spki_b64);
        let android = STANDARD.encode(spki_b64);
        assert!(android.contains('+') || android.contains('/') || android.ends_with('='));
        assert_eq!(public_key_from_query(&ios).as_deref(), Some(spki_b64));
        assert_eq!(public_key_from_query(&android).as_deref(), Some(spki_b64));
        // Android's raw '+' arrives as a space after form-style decoding.
        let mangled = android.replace('+', " ");
        assert_eq!(public_key_from_query(&mangled).as_deref(), Some(spki_b64));
        assert_eq!(public_key_from_query("***"), None);
    }

    #[test]
    fn strict_decoding_is_strict() {
        assert!(decode_standard("YWJj").is_some());
        assert!(decode_standard("YWI").is_none(), "padding is required");
        assert!(decode_standard("YW-_").is_none(), "url alphabet is refused");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Bc+d").as_deref(), Some("a b+c+d"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        // Found by the property tests: a sign is not a hex digit.
        assert_eq!(percent_decode("%+a"), None);
        assert_eq!(percent_decode("%-1"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
        assert_eq!(percent_decode("100%"), None, "a trailing % is malformed");
        assert_eq!(percent_decode("%E5%90%8D").as_deref(), Some("名"));
        assert_eq!(
            percent_decode("%25zz").as_deref(),
            Some("%zz"),
            "decoded once"
        );
    }
}
