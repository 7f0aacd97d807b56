//! A software WebAuthn authenticator for the use-case and end-to-end tests: a P-256 key made with `ring`,
//! and real attestation and assertion objects (authenticator data, COSE key, CBOR written by
//! hand: the few CBOR items WebAuthn needs), answered as `@simplewebauthn/browser`'s
//! `RegistrationResponseJSON` / `AuthenticationResponseJSON`, which `@authsignal/browser` sends.
//!
//! Every part a test may want to get wrong is a field: the origin and RP id it claims, the
//! flags, the counter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

pub struct SoftPasskey {
    key: EcdsaKeyPair,
    pub credential_id: Vec<u8>,
    /// The user handle the authenticator stored at registration (a resident key).
    pub user_handle: Vec<u8>,
    /// The origin the "browser" writes into clientDataJSON.
    pub origin: String,
    /// The RP id whose hash goes into the authenticator data.
    pub rp_id: String,
    pub counter: u32,
    pub user_verified: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

// CBOR (RFC 8949), the items WebAuthn needs.
fn cbor_head(major: u8, value: usize, out: &mut Vec<u8>) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend([major | 24, value as u8]),
        _ => {
            out.push(major | 25);
            out.extend((value as u16).to_be_bytes());
        }
    }
}

fn cbor_int(value: i64, out: &mut Vec<u8>) {
    if value >= 0 {
        cbor_head(0, value as usize, out);
    } else {
        cbor_head(1, (-1 - value) as usize, out);
    }
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, bytes.len(), out);
    out.extend(bytes);
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    cbor_head(3, text.len(), out);
    out.extend(text.as_bytes());
}

impl SoftPasskey {
    pub fn new(origin: &str, rp_id: &str) -> SoftPasskey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut credential_id = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut credential_id).unwrap();
        SoftPasskey {
            key,
            credential_id,
            user_handle: Vec::new(),
            origin: origin.to_owned(),
            rp_id: rp_id.to_owned(),
            counter: 0,
            user_verified: true,
        }
    }

    pub fn id(&self) -> String {
        b64(&self.credential_id)
    }

    fn flags(&self) -> u8 {
        UP | if self.user_verified { UV } else { 0 }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref(); // 0x04 || x || y
        let mut out = Vec::new();
        cbor_head(5, 5, &mut out);
        cbor_int(1, &mut out); // kty: EC2
        cbor_int(2, &mut out);
        cbor_int(3, &mut out); // alg: ES256
        cbor_int(-7, &mut out);
        cbor_int(-1, &mut out); // crv: P-256
        cbor_int(1, &mut out);
        cbor_int(-2, &mut out);
        cbor_bytes(&point[1..33], &mut out);
        cbor_int(-3, &mut out);
        cbor_bytes(&point[33..65], &mut out);
        out
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    /// `navigator.credentials.create()` with the server's options (the `options` of
    /// registration-options): attestation `none`, a resident key holding the user handle.
    pub fn create(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("options.challenge");
        self.user_handle = unb64(options["user"]["id"].as_str().expect("options.user.id"));
        let client_data = self.client_data("webauthn.create", challenge);
        let mut auth_data = sha256(self.rp_id.as_bytes());
        auth_data.push(self.flags() | AT);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // aaguid
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        cbor_head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        cbor_head(5, 0, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// `navigator.credentials.get()` with the server's options: the counter goes up by one
    /// first (set `counter` to replay an old value).
    pub fn get(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert_with_counter(options, self.counter)
    }

    /// An assertion with exactly this counter value.
    pub fn assert_with_counter(&self, options: &Value, counter: u32) -> Value {
        let challenge = options["challenge"].as_str().expect("options.challenge");
        let client_data = self.client_data("webauthn.get", challenge);
        let mut auth_data = sha256(self.rp_id.as_bytes());
        auth_data.push(self.flags());
        auth_data.extend(counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }
}
