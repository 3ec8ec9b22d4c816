//! The key-file parser, on anything a secret could hold. The input is JSON-ish text; `$KEY`
//! in it is replaced by a real RSA private key (PEM, JSON-escaped) generated at start, so the
//! corpus holds no key material and the fuzzer still reaches the accepted path. It must never
//! panic, and neither its errors nor a parsed key's Debug may show the private key.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vertex_broker::key::ServiceAccountKey;

fn pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| google_emulator::generate_rsa_2048().private_pem)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let escaped = serde_json::to_string(pem()).unwrap();
    let input = text.replace("$KEY", escaped.trim_matches('"'));
    let body_lines: Vec<&str> = pem().lines().filter(|l| !l.starts_with("-----")).collect();
    match ServiceAccountKey::parse(&input) {
        Ok(key) => {
            assert_eq!(key.raw(), input);
            let shown = format!("{key:?} {key}");
            assert!(body_lines.iter().all(|l| !shown.contains(l)), "Debug or Display shows the key");
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(body_lines.iter().all(|l| !shown.contains(l)), "an error shows the key: {shown}");
        }
    }
});
