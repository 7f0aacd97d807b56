//! A software WebAuthn authenticator for the use-case and end-to-end tests: a P-256 key made with `ring`,
//! and real attestation and assertion objects (authenticator data, COSE key, CBOR written by
//! hand: the few CBOR items WebAuthn needs), answered as `@simplewebauthn/browser`'s
//! `RegistrationResponseJSON` / `AuthenticationResponseJSON`, which `@authsignal/browser` sends.
//!
//! Every part a test may want to get wrong is a field: the origin and RP id it claims, the
//! flags, the counter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crypto_glue::ecdsa_p256::{EcdsaP256DerSignature, EcdsaP256SigningKey};
use crypto_glue::traits::{EncodeDer, EncodePem, Generate, LineEndingPem, Signer};
use crypto_glue::x509::profile::BuilderProfile;
use crypto_glue::x509::{
    AssociatedOid, BasicConstraints, Builder, CertBuilderError, CertificateBuilder, Extension,
    Name, OctetString, SerialNumber, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
    TbsCertificate, Validity, profile,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use std::str::FromStr;
use std::time::Duration;

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

    /// Authenticator data with the attested credential (aaguid zero, the credential id and key).
    fn registration_auth_data(&self) -> Vec<u8> {
        let mut auth_data = sha256(self.rp_id.as_bytes());
        auth_data.push(self.flags() | AT);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // aaguid
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        auth_data
    }

    /// `navigator.credentials.create()` with the server's options (the `options` of
    /// registration-options): attestation `none`, a resident key holding the user handle.
    pub fn create(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("options.challenge");
        self.user_handle = unb64(options["user"]["id"].as_str().expect("options.user.id"));
        let client_data = self.client_data("webauthn.create", challenge);
        let auth_data = self.registration_auth_data();
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

    /// `navigator.credentials.create()` by an authenticator with a vendor attestation: `packed`
    /// attestation whose `x5c` is a fresh attestation certificate issued by `ca`, signed over
    /// authenticator data and the client data hash (WebAuthn 8.2).
    pub fn create_attested(&mut self, options: &Value, ca: &AttestationCa) -> Value {
        let mut created = self.create(options);
        let client_data = unb64(created["response"]["clientDataJSON"].as_str().unwrap());
        let auth_data = self.registration_auth_data();
        let (attestation_key, certificate) = ca.issue_attestation_certificate();
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature: EcdsaP256DerSignature = attestation_key.sign(&signed);
        let mut attestation = Vec::new();
        cbor_head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("packed", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        cbor_head(5, 3, &mut attestation);
        cbor_text("alg", &mut attestation);
        cbor_int(-7, &mut attestation);
        cbor_text("sig", &mut attestation);
        cbor_bytes(signature.to_bytes().as_ref(), &mut attestation);
        cbor_text("x5c", &mut attestation);
        cbor_head(4, 1, &mut attestation);
        cbor_bytes(&certificate, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        created["response"]["attestationObject"] = json!(b64(&attestation));
        created
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

/// A test authenticator vendor's attestation root: a self-signed P-256 CA whose PEM a tenant
/// can trust (`--passkey-attestation-ca`), issuing the attestation certificates of
/// [`SoftPasskey::create_attested`].
pub struct AttestationCa {
    /// The CA certificate, PEM.
    pub pem: String,
    subject: Name,
    key: EcdsaP256SigningKey,
}

/// The subject the packed format requires of an attestation certificate (WebAuthn 8.2.1):
/// C, O, OU "Authenticator Attestation", CN.
struct AttestationLeaf {
    issuer: Name,
}

impl BuilderProfile for AttestationLeaf {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        Name::from_str("CN=Soft Passkey,OU=Authenticator Attestation,O=trusted-device tests,C=US")
            .unwrap()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> Result<Vec<Extension>, CertBuilderError> {
        // "The Basic Constraints extension MUST have the CA component set to false."
        let not_a_ca = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        };
        Ok(vec![Extension {
            extn_id: BasicConstraints::OID,
            critical: true,
            extn_value: OctetString::new(not_a_ca.to_der()?)?,
        }])
    }
}

impl AttestationCa {
    pub fn new(name: &str) -> AttestationCa {
        let key = EcdsaP256SigningKey::generate();
        let subject = Name::from_str(&format!("CN={name},O=trusted-device tests,C=US")).unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_key(key.verifying_key()).unwrap();
        let certificate = CertificateBuilder::new(
            profile::cabf::Root::new(false, subject.clone()).unwrap(),
            uuid_serial(),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            spki,
        )
        .unwrap()
        .build::<_, EcdsaP256DerSignature>(&key)
        .unwrap();
        AttestationCa {
            pem: certificate.to_pem(LineEndingPem::LF).unwrap(),
            subject,
            key,
        }
    }

    /// A new attestation key and its certificate (DER), issued by this CA.
    fn issue_attestation_certificate(&self) -> (EcdsaP256SigningKey, Vec<u8>) {
        let attestation_key = EcdsaP256SigningKey::generate();
        let spki = SubjectPublicKeyInfoOwned::from_key(attestation_key.verifying_key()).unwrap();
        let certificate = CertificateBuilder::new(
            AttestationLeaf {
                issuer: self.subject.clone(),
            },
            uuid_serial(),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            spki,
        )
        .unwrap()
        .build::<_, EcdsaP256DerSignature>(&self.key)
        .unwrap();
        (attestation_key, certificate.to_der().unwrap())
    }
}

fn uuid_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] = 0x01; // positive, no leading zero
    SerialNumber::new(&bytes).unwrap()
}
