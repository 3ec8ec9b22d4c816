//! RSA keys, PEM and RS256 JWTs: the few primitives the emulator needs, on aws-lc-rs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

/// A freshly generated RSA-2048 key: the PKCS#8 PEM handed to the client, the public half kept.
pub struct GeneratedKey {
    /// The private key, PKCS#8 PEM, as a key file's `private_key`.
    pub private_pem: String,
    /// The public key, PKCS#1 DER, that assertions are verified with.
    pub public_der: Vec<u8>,
}

/// Generates an RSA-2048 key pair (aws-lc-rs: fast enough for debug builds).
pub fn generate_rsa_2048() -> GeneratedKey {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
    let der = pair.as_der().expect("PKCS#8 encoding");
    GeneratedKey { private_pem: pem("PRIVATE KEY", der.as_ref()), public_der: pair.public_key().as_ref().to_vec() }
}

/// The emulator's own signing key (Google's, for ID tokens), with its JWK parts.
pub struct SigningKey {
    pair: KeyPair,
    pub kid: String,
}

impl SigningKey {
    pub fn generate() -> Self {
        Self { pair: KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"), kid: random_hex(20) }
    }

    pub fn sign_jwt(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut sig)
            .expect("RS256 signature");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        serde_json::json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }
}

/// Base64url that accepts padded and unpadded input, as Google does (yup-oauth2 pads).
const URL_SAFE_ANY_PAD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A JWT split into its parts, signature not yet checked.
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header = serde_json::from_slice(&URL_SAFE_ANY_PAD.decode(h).ok()?).ok()?;
        let claims = serde_json::from_slice(&URL_SAFE_ANY_PAD.decode(c).ok()?).ok()?;
        Some(Self { header, claims, signing_input: format!("{h}.{c}"), signature: URL_SAFE_ANY_PAD.decode(s).ok()? })
    }

    /// True when the header says RS256 and the signature verifies under `public_der` (PKCS#1).
    pub fn verifies_with(&self, public_der: &[u8]) -> bool {
        self.header.get("alg").and_then(Value::as_str) == Some("RS256")
            && UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_der)
                .verify(self.signing_input.as_bytes(), &self.signature)
                .is_ok()
    }
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).expect("system randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).expect("system randomness");
    URL_SAFE_NO_PAD.encode(buf)
}
