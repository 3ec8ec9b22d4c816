//! The bearer token the broker sent never comes back to the caller. An upstream that reflects
//! request headers (a misconfigured proxy at `VERTEX_BROKER_VERTEX_ENDPOINT`, a private
//! endpoint's front end) would otherwise hand it out, in a header or in the body. Headers are
//! checked whole; the body is checked as it streams, holding back only a chunk's tail that
//! could begin the token (which an SSE event's `\r\n\r\n` never does), and a match is masked
//! byte for byte so that a declared length stays true.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::header::{HeaderMap, HeaderValue};

/// Shown instead of a header value that held the token.
const REDACTED: &str = "[redacted by vertex-broker]";

/// The bearer token as the gateway sends it (the `Authorization` value, marked sensitive) and
/// watches for it (a prepared searcher): made once per token, shared by the calls that use it.
pub struct SentToken {
    token: Box<[u8]>,
    finder: memchr::memmem::Finder<'static>,
    authorization: HeaderValue,
}

impl SentToken {
    /// `None` if the token cannot be a header value.
    pub fn new(token: &str) -> Option<Self> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        authorization.set_sensitive(true);
        let token: Box<[u8]> = token.as_bytes().into();
        let finder = memchr::memmem::Finder::new(&token).into_owned();
        Some(Self { token, finder, authorization })
    }

    /// Whether this is `token`.
    pub fn is(&self, token: &str) -> bool {
        *self.token == *token.as_bytes()
    }

    /// `Bearer {token}`.
    pub fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }
}

/// Masks a token in an answer: its headers once, then its body chunk by chunk.
pub struct Redactor {
    sent: Arc<SentToken>,
    /// A tail of the last chunk that could be the token's start, not yet passed on.
    held: BytesMut,
    /// Times the token was found.
    pub found: u32,
}

impl Redactor {
    /// Masks `token` (one that is a header value: the fuzz target's and the tests').
    pub fn new(token: &str) -> Self {
        Self::of(Arc::new(SentToken::new(token).expect("a header value")))
    }

    /// Masks the token `sent` holds.
    pub fn of(sent: Arc<SentToken>) -> Self {
        Self { sent, held: BytesMut::new(), found: 0 }
    }

    /// Replaces every header value that holds the token.
    pub fn headers(&mut self, headers: &mut HeaderMap) {
        for value in headers.values_mut() {
            if self.sent.finder.find(value.as_bytes()).is_some() {
                *value = HeaderValue::from_static(REDACTED);
                self.found += 1;
            }
        }
    }

    /// What of `chunk` may be passed on now: the token masked, a tail that could begin it held
    /// back until the next chunk shows what it is. Passes the chunk itself when it is clean.
    pub fn chunk(&mut self, chunk: Bytes) -> Bytes {
        if self.sent.token.is_empty() {
            return chunk;
        }
        let clean = self.held.is_empty() && self.sent.finder.find(&chunk).is_none();
        if clean && self.partial_at(&chunk).is_none() {
            return chunk;
        }
        let mut all = std::mem::take(&mut self.held);
        all.extend_from_slice(&chunk);
        let mut from = 0;
        while let Some(at) = self.sent.finder.find(&all[from..]) {
            let start = from + at;
            all[start..start + self.sent.token.len()].fill(b'*');
            self.found += 1;
            from = start + self.sent.token.len();
        }
        if let Some(at) = self.partial_at(&all[from..]) {
            self.held = all.split_off(from + at);
        }
        all.freeze()
    }

    /// What is still held back, at the answer's end (it was not the token).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.held).freeze()
    }

    /// Where a suffix of `data` that is a proper prefix of the token starts, if one does.
    fn partial_at(&self, data: &[u8]) -> Option<usize> {
        let start = data.len().saturating_sub(self.sent.token.len() - 1);
        let first = self.sent.token[0];
        memchr::memchr_iter(first, &data[start..]).map(|i| start + i).find(|&i| self.sent.token.starts_with(&data[i..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ya29.secret-token";

    fn pass(r: &mut Redactor, chunks: &[&str]) -> String {
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&r.chunk(Bytes::copy_from_slice(c.as_bytes())));
        }
        out.extend_from_slice(&r.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_token_is_masked_wherever_the_chunks_split_it() {
        let body = format!(r#"{{"error":{{"message":"you sent Bearer {TOKEN} and {TOKEN}"}}}}"#);
        let masked = body.replace(TOKEN, &"*".repeat(TOKEN.len()));
        for split in 0..body.len() {
            let mut r = Redactor::new(TOKEN);
            assert_eq!(pass(&mut r, &[&body[..split], &body[split..]]), masked, "split at {split}");
            assert_eq!(r.found, 2);
        }
        let mut r = Redactor::new(TOKEN);
        let bytes: Vec<String> = body.chars().map(String::from).collect();
        let one_by_one: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(pass(&mut r, &one_by_one), masked, "byte by byte");
    }

    #[test]
    fn clean_chunks_pass_as_they_are_and_a_near_miss_is_given_back() {
        let mut r = Redactor::new(TOKEN);
        let event = Bytes::from_static(b"data: {\"text\":\"hi\"}\r\n\r\n");
        let passed = r.chunk(event.clone());
        assert_eq!(passed.as_ptr(), event.as_ptr(), "no copy, nothing held: the event goes out whole");
        assert_eq!(
            pass(&mut r, &["the end: ya29.sec"]),
            "the end: ya29.sec",
            "a prefix at the very end is not the token"
        );
        assert_eq!(r.found, 0);
    }

    #[test]
    fn headers_that_hold_the_token_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-echo-authorization", HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap());
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let mut r = Redactor::new(TOKEN);
        r.headers(&mut h);
        assert_eq!(
            (h["x-echo-authorization"].to_str().unwrap(), h["content-type"].to_str().unwrap()),
            (REDACTED, "application/json")
        );
        assert_eq!(r.found, 1);
    }
}
