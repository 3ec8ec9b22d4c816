//! The gateway's request handling as a neighbour on 127.0.0.1 could drive it: the input is a
//! request head as text (request line, then `Name: value` lines), a blank line, and a body whose
//! NUL bytes mark where one chunk ends and the next begins. Nothing may panic; a refusal is one
//! line in Google's shape; a forwarded call's URL keeps the location's own host and exactly the
//! path received, with only the row's query parameters; the allowlist holds on path and body;
//! the body, however chunked, is held as one buffer byte for byte, and an echoed token is
//! masked wherever the chunks split it.

#![no_main]

#[path = "common/request_head.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vertex_broker::broker::gateway::held::{Budget, Held};
use vertex_broker::broker::gateway::redact::Redactor;
use vertex_broker::broker::gateway::route::{host, VertexCall};
use vertex_broker::broker::guard;
use vertex_broker::config::AllowedModels;

const TOKEN: &str = "ya29.fuzz-token";

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let Some(req) = common::request(&String::from_utf8_lossy(head)) else { return };

    // The body, chunk by chunk: held whole, and passed through the token mask.
    let chunks: Vec<&[u8]> = body.split(|b| *b == 0).collect();
    let mut held = Held::new(Budget::new(1 << 20));
    let mut redactor = Redactor::new(TOKEN);
    let mut passed = Vec::new();
    for c in &chunks {
        assert!(held.extend(c));
        passed.extend_from_slice(&redactor.chunk(bytes::Bytes::copy_from_slice(c)));
    }
    passed.extend_from_slice(&redactor.finish());
    let whole: Vec<u8> = chunks.concat();
    let held = held.freeze();
    assert_eq!(held.bytes().as_ref(), &whole[..], "held byte for byte");
    assert_eq!(passed.len(), whole.len(), "masked in place");
    assert!(!passed.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the token never passes");

    if let Err(refusal) = guard::check_caller(req.uri(), req.headers()) {
        assert!(!refusal.message.contains(['\n', '\r']), "{refusal:?}");
        return;
    }
    let path = req.uri().path();
    let Ok(mut call) = VertexCall::parse(path, req.uri().query(), req.method(), "global") else { return };
    let allowed = AllowedModels::parse("gemini-2.5-*,anthropic/claude-*").unwrap();
    if call.read_body(&whole).is_err() {
        return;
    }
    if let (Ok(()), Some(model)) = (call.check_model(&allowed), &call.model) {
        assert!(allowed.allows(model), "{model:?}");
    }
    let url = reqwest::Url::parse(&call.url(None, false)).expect("a URL");
    assert_eq!(format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()), host(&call.location));
    assert!(url.path().starts_with(&format!("/{}/", call.version)) && url.path().ends_with(&call.rest), "{url} for {path}");
    assert!(url.fragment().is_none());
});
