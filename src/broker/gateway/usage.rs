//! Token usage read from a Vertex answer as it passes: `usageMetadata` comes last (in the one
//! JSON answer, and in the last event of a stream, which carries the whole call's counts), so
//! only the answer's tail is kept, never the whole answer.

use bytes::Bytes;
use serde::Serialize;

/// Bytes of the answer's end kept to find `usageMetadata` in.
const TAIL: usize = 8 * 1024;

/// `usageMetadata`'s counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_token_count: u64,
    pub candidates_token_count: u64,
    pub total_token_count: u64,
}

/// The last few KiB of an answer.
#[derive(Default)]
pub struct UsageTail {
    tail: Vec<u8>,
}

impl UsageTail {
    pub fn push(&mut self, chunk: &Bytes) {
        if chunk.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
            return;
        }
        let overflow = (self.tail.len() + chunk.len()).saturating_sub(TAIL);
        self.tail.drain(..overflow);
        self.tail.extend_from_slice(chunk);
    }

    /// The last `usageMetadata` object in the tail, if it is whole there.
    pub fn usage(&self) -> Option<Usage> {
        const KEY: &[u8] = b"\"usageMetadata\"";
        let at = self.tail.windows(KEY.len()).rposition(|w| w == KEY)?;
        let after = &self.tail[at + KEY.len()..];
        let colon = after.iter().position(|b| !b.is_ascii_whitespace())?;
        if after[colon] != b':' {
            return None;
        }
        let mut values = serde_json::Deserializer::from_slice(&after[colon + 1..]).into_iter::<serde_json::Value>();
        let object = values.next()?.ok()?;
        let count = |name: &str| object.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Some(Usage {
            prompt_token_count: count("promptTokenCount"),
            candidates_token_count: count("candidatesTokenCount"),
            total_token_count: count("totalTokenCount"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(chunks: &[&str]) -> UsageTail {
        let mut t = UsageTail::default();
        for c in chunks {
            t.push(&Bytes::copy_from_slice(c.as_bytes()));
        }
        t
    }

    #[test]
    fn finds_the_last_usage_in_json_and_in_events_split_anywhere() {
        let json = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7, "promptTokensDetails":[{"modality":"TEXT","tokenCount":3}]},"modelVersion":"m"}"#;
        let expected = Usage { prompt_token_count: 3, candidates_token_count: 4, total_token_count: 7 };
        assert_eq!(tail_of(&[json]).usage(), Some(expected));
        for split in 1..json.len() {
            assert_eq!(tail_of(&[&json[..split], &json[split..]]).usage(), Some(expected), "split at {split}");
        }
        let sse = format!("data: {{\"usageMetadata\":{{\"promptTokenCount\":1}}}}\r\n\r\ndata: {}\r\n\r\n", json);
        assert_eq!(tail_of(&[&sse]).usage(), Some(expected), "the last event's counts");
    }

    #[test]
    fn bounded_and_absent() {
        let mut t = tail_of(&[r#"{"usageMetadata":{"totalTokenCount":9}}"#]);
        t.push(&Bytes::from(vec![b' '; 3 * TAIL]));
        assert_eq!(t.tail.len(), TAIL);
        assert_eq!(t.usage(), None, "pushed out of the tail");
        assert_eq!(tail_of(&[r#"{"predictions":[]}"#]).usage(), None);
        assert_eq!(tail_of(&[r#"{"usageMetadata":{"totalTok"#]).usage(), None, "cut short");
    }
}
