//! `ServiceAccountKey`: a Google service-account JSON key file, parsed and validated.
//!
//! The secret value is the key file byte for byte as Google issued it (so any Google library
//! can read it too); this type keeps those bytes, the fields the project needs, and the parsed
//! RSA key for signing. Debug and Display never show key material, and the key bytes are
//! zeroized when dropped.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Why a key file was refused. Each variant names the field and what was expected; none
/// carries any part of the private key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The value is not JSON.
    #[error(
        "the secret value is not JSON ({0}); expected a Google service-account key file as \
         downloaded from IAM (`gcloud iam service-accounts keys create key.json ...`)"
    )]
    NotJson(String),
    /// A field the key file must have is absent.
    #[error("field `{field}` is missing; expected {expected}")]
    Missing {
        /// The field.
        field: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A field holds something unusable.
    #[error("field `{field}` {problem}; expected {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
        /// What it should hold.
        expected: &'static str,
    },
}

#[derive(Deserialize)]
struct KeyFileFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
    project_id: Option<String>,
}

/// A validated Google service-account key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    raw: Arc<Zeroizing<String>>,
    client_email: String,
    private_key_id: String,
    token_uri: String,
    project_id: Option<String>,
    signer: Arc<RsaKeyPair>,
}

const EMAIL_EXPECTED: &str = "the service account's email, e.g. app@project.iam.gserviceaccount.com";
const KEY_EXPECTED: &str = "an RSA private key in PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\"), as Google issues it";

/// A field's value for an error message: quoted when it is short plain text, else only its
/// length. A key file pasted into the wrong field must not put the private key into an error,
/// which reaches logs, the CLI and the broker's status.
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    let plain = value.len() <= MAX && !value.contains("-----") && !value.chars().any(char::is_control);
    if plain {
        format!("{value:?}")
    } else {
        format!("a {}-character value (not shown)", value.chars().count())
    }
}

/// Checks a field that gets shown: short plain text (no control characters, no PEM armour) that
/// also passes `valid`; the error shows the value only when it is plain.
fn plain(
    field: &'static str,
    value: &str,
    max: usize,
    valid: impl Fn(&str) -> bool,
    expected: &'static str,
) -> Result<(), KeyError> {
    let is_plain = value.len() <= max && !value.contains("-----") && !value.chars().any(char::is_control);
    if is_plain && valid(value) {
        return Ok(());
    }
    Err(KeyError::Invalid { field, problem: format!("is {}", shown(value)), expected })
}

impl ServiceAccountKey {
    /// Parses and validates a key file. `raw` is kept as is: it is what gets stored.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let fields: KeyFileFields = match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(_)) => {
                serde_json::from_str(raw).map_err(|e| KeyError::NotJson(e.to_string()))?
            }
            Ok(_) => return Err(KeyError::NotJson("it is JSON but not an object".into())),
            Err(e) => return Err(KeyError::NotJson(format!("line {}, column {}", e.line(), e.column()))),
        };
        let private_key = fields.private_key.map(Zeroizing::new);

        match fields.kind.as_deref() {
            Some("service_account") => {}
            None => return Err(KeyError::Missing { field: "type", expected: "\"service_account\"" }),
            Some(other) => {
                return Err(KeyError::Invalid {
                    field: "type",
                    problem: format!("is {}", shown(other)),
                    expected: "\"service_account\" (user and external-account credentials cannot be rotated)",
                })
            }
        }
        // Every field shown in logs, errors, Debug or the metadata answers must be plain text:
        // a private key pasted into one of them must not come out there.
        let client_email = required(fields.client_email, "client_email", EMAIL_EXPECTED)?;
        plain("client_email", &client_email, 254, |v| v.contains('@'), EMAIL_EXPECTED)?;
        const ID_EXPECTED: &str = "the key's 40-hex-digit id as Google issued it";
        let private_key_id = required(fields.private_key_id, "private_key_id", ID_EXPECTED)?;
        plain("private_key_id", &private_key_id, 128, |v| v.bytes().all(|b| b.is_ascii_alphanumeric()), ID_EXPECTED)?;
        const URI_EXPECTED: &str = "Google's token endpoint, https://oauth2.googleapis.com/token";
        let token_uri = required(fields.token_uri, "token_uri", URI_EXPECTED)?;
        let is_url = |v: &str| matches!(reqwest::Url::parse(v), Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some());
        plain("token_uri", &token_uri, 2048, is_url, URI_EXPECTED)?;
        let project_id = fields.project_id.filter(|p| !p.is_empty());
        if let Some(project) = &project_id {
            let project_chars = |v: &str| v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
            plain("project_id", project, 100, project_chars, "the Google Cloud project id, e.g. my-project")?;
        }
        let private_key = private_key
            .filter(|k| !k.trim().is_empty())
            .ok_or(KeyError::Missing { field: "private_key", expected: KEY_EXPECTED })?;
        let der = pkcs8_der(&private_key)?;
        let signer = RsaKeyPair::from_pkcs8(&der).map_err(|e| KeyError::Invalid {
            field: "private_key",
            problem: format!("is not a usable RSA key ({e})"),
            expected: KEY_EXPECTED,
        })?;
        Ok(Self {
            raw: Arc::new(Zeroizing::new(raw.to_string())),
            client_email,
            private_key_id,
            token_uri,
            project_id,
            signer: Arc::new(signer),
        })
    }

    /// The key file exactly as issued: the secret value to store.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The account the key belongs to.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Google's id for this key (the last segment of its IAM resource name).
    pub fn private_key_id(&self) -> &str {
        &self.private_key_id
    }

    /// The token endpoint the key file names.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The project named in the key file, else the one in the account's email.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id
            .as_deref()
            .or_else(|| self.client_email.split_once('@').and_then(|(_, d)| d.strip_suffix(".iam.gserviceaccount.com")))
    }

    /// RS256 signature over `message` (a JWT signing input).
    pub fn sign_rs256(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.signer.public_modulus_len()];
        self.signer
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
            .expect("RSA signing with a validated key cannot fail");
        sig
    }
}

fn required(value: Option<String>, field: &'static str, expected: &'static str) -> Result<String, KeyError> {
    value.filter(|v| !v.trim().is_empty()).ok_or(KeyError::Missing { field, expected })
}

/// Decodes a `-----BEGIN PRIVATE KEY-----` PEM to DER.
fn pkcs8_der(pem: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let invalid = |problem: &str| KeyError::Invalid {
        field: "private_key",
        problem: problem.to_string(),
        expected: KEY_EXPECTED,
    };
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or_else(|| {
            if pem.contains("BEGIN RSA PRIVATE KEY") {
                invalid("is a PKCS#1 RSA key")
            } else {
                invalid("is not a PEM private key")
            }
        })?;
    let b64: Zeroizing<String> = Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
    STANDARD.decode(b64.as_bytes()).map(Zeroizing::new).map_err(|_| invalid("has a PEM body that is not base64"))
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {} of {}", self.private_key_id, self.client_email)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_pasted_into_another_field_is_not_repeated_in_the_error() {
        // Found by the key_parse fuzz target: field values used to be quoted whole.
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDB\n-----END PRIVATE KEY-----\n";
        for field in ["type", "client_email", "token_uri", "private_key_id", "project_id"] {
            let mut file = serde_json::json!({
                "type": "service_account", "private_key_id": "k1", "private_key": "x",
                "client_email": "a@b.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
            });
            file[field] = serde_json::Value::from(format!("abc{pem}"));
            let err = ServiceAccountKey::parse(&file.to_string()).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("MIIEvAIBADAN") && shown.contains("not shown"), "{field}: {shown}");
            assert!(shown.contains(field), "{field}: {shown}");
        }
        let err = ServiceAccountKey::parse(r#"{"type":"authorized_user"}"#).unwrap_err();
        assert!(err.to_string().contains("\"authorized_user\""), "short values are still quoted: {err}");
    }

    use super::*;

    /// A real key file from the emulator, so parsing is tested on Google's exact format.
    fn key_file() -> String {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let emu = google_emulator::Emulator::start().await.unwrap();
            emu.seed_key("app@demo.iam.gserviceaccount.com")
        })
    }

    fn with(field: &str, value: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(&key_file()).unwrap();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(field);
        } else {
            v[field] = value;
        }
        v.to_string()
    }

    #[test]
    fn parses_a_google_key_file_and_keeps_its_bytes() {
        let raw = key_file();
        let key = ServiceAccountKey::parse(&raw).unwrap();
        assert_eq!(key.raw(), raw);
        assert_eq!(key.client_email(), "app@demo.iam.gserviceaccount.com");
        assert_eq!(key.project_id(), Some("demo"));
        assert_eq!(key.private_key_id().len(), 40);
        assert_eq!(key.sign_rs256(b"x").len(), 256);
    }

    #[test]
    fn debug_and_display_hide_the_private_key() {
        let raw = key_file();
        let key = ServiceAccountKey::parse(&raw).unwrap();
        let pem: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let body_line = pem["private_key"].as_str().unwrap().lines().nth(1).unwrap().to_string();
        for shown in [format!("{key:?}"), format!("{key}")] {
            assert!(!shown.contains(&body_line), "{shown}");
            assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        use serde_json::json;
        let cases = [
            (with("type", json!("authorized_user")), "`type`"),
            (with("type", serde_json::Value::Null), "`type`"),
            (with("client_email", serde_json::Value::Null), "`client_email`"),
            (with("client_email", json!("nobody")), "`client_email`"),
            (with("private_key_id", json!("")), "`private_key_id`"),
            (with("private_key", serde_json::Value::Null), "`private_key`"),
            (
                with("private_key", json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")),
                "`private_key`",
            ),
            (
                with("private_key", json!("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----")),
                "PKCS#1",
            ),
            (with("token_uri", json!("not a url")), "`token_uri`"),
        ];
        for (raw, needle) in cases {
            let err = ServiceAccountKey::parse(&raw).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should name {needle}");
        }
        let err = ServiceAccountKey::parse("hello").unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
        let err = ServiceAccountKey::parse("[1]").unwrap_err().to_string();
        assert!(err.contains("not an object"), "{err}");
    }
}
