//! Token usage read from a Vertex answer as it passes, in each surface's own words: Gemini's
//! `usageMetadata`, OpenAI's `usage.{prompt,completion}_tokens`, Anthropic's
//! `usage.{input,output}_tokens`. Usage comes last (the one JSON answer, the last event of a
//! stream), except in an Anthropic stream, whose `message_start` opens it with the input count:
//! so only the answer's first and last few KiB are kept, never the whole answer.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::route::table::Dialect;

/// Bytes of the answer's end kept to find usage in.
const TAIL: usize = 8 * 1024;
/// Bytes of the answer's start kept (an Anthropic stream's `message_start`).
const HEAD: usize = 4 * 1024;

/// A call's token counts, whatever the surface called them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_token_count: u64,
    /// Answer (candidates, completion, output) tokens.
    pub candidates_token_count: u64,
    /// Both, as the surface counts them.
    pub total_token_count: u64,
}

/// The first and last few KiB of an answer, and how to read usage from them.
pub struct UsageReader {
    dialect: Dialect,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl UsageReader {
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect, head: Vec::new(), tail: Vec::new() }
    }

    pub fn push(&mut self, chunk: &Bytes) {
        if self.dialect == Dialect::None {
            return;
        }
        if self.dialect == Dialect::Anthropic && self.head.len() < HEAD {
            let room = HEAD - self.head.len();
            self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if chunk.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
            return;
        }
        let overflow = (self.tail.len() + chunk.len()).saturating_sub(TAIL);
        self.tail.drain(..overflow);
        self.tail.extend_from_slice(chunk);
    }

    /// The call's usage, if the answer states it where it is kept.
    pub fn usage(&self) -> Option<Usage> {
        match self.dialect {
            Dialect::Gemini => {
                let c = object_after(&self.tail, b"\"usageMetadata\"", Last)?;
                Some(Usage {
                    prompt_token_count: c.prompt_token_count,
                    candidates_token_count: c.candidates_token_count,
                    total_token_count: c.total_token_count,
                })
            }
            Dialect::OpenAi => {
                let c = object_after(&self.tail, b"\"usage\"", Last)?;
                Some(Usage {
                    prompt_token_count: c.prompt_tokens,
                    candidates_token_count: c.completion_tokens,
                    total_token_count: c.total_tokens,
                })
            }
            Dialect::Anthropic => {
                let last = object_after(&self.tail, b"\"usage\"", Last);
                let first = object_after(&self.head, b"\"usage\"", First);
                let input = [&first, &last].iter().filter_map(|c| c.as_ref()).map(|c| c.input_tokens).max()?;
                let output = last.as_ref().map_or(0, |c| c.output_tokens);
                Some(Usage {
                    prompt_token_count: input,
                    candidates_token_count: output,
                    total_token_count: input + output,
                })
            }
            Dialect::None => None,
        }
    }
}

/// A usage object's counts in any surface's words; a count that is absent or not a whole
/// number reads as 0, other fields are skipped unread.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    #[serde(default, deserialize_with = "count")]
    prompt_token_count: u64,
    #[serde(default, deserialize_with = "count")]
    candidates_token_count: u64,
    #[serde(default, deserialize_with = "count")]
    total_token_count: u64,
    #[serde(default, deserialize_with = "count", rename = "prompt_tokens")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "count", rename = "completion_tokens")]
    completion_tokens: u64,
    #[serde(default, deserialize_with = "count", rename = "total_tokens")]
    total_tokens: u64,
    #[serde(default, deserialize_with = "count", rename = "input_tokens")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "count", rename = "output_tokens")]
    output_tokens: u64,
}

fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_u64().unwrap_or(0))
}

/// Which occurrence of a key to read.
#[derive(Clone, Copy)]
enum Occurrence {
    First,
    Last,
}
use Occurrence::{First, Last};

/// The counts of the JSON object after `"key":` at its first or last occurrence in `buf`, if
/// that object is whole there.
fn object_after(buf: &[u8], key: &[u8], which: Occurrence) -> Option<Counts> {
    let at = match which {
        First => memchr::memmem::find(buf, key)?,
        Last => memchr::memmem::rfind(buf, key)?,
    };
    let after = &buf[at + key.len()..];
    let colon = after.iter().position(|b| !b.is_ascii_whitespace())?;
    if after[colon] != b':' {
        return None;
    }
    let value = &after[colon + 1..];
    let open = value.iter().position(|b| !b.is_ascii_whitespace())?;
    if value[open] != b'{' {
        return None;
    }
    serde_json::Deserializer::from_slice(&value[open..]).into_iter::<Counts>().next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dialect: Dialect, chunks: &[&str]) -> Option<Usage> {
        let mut t = UsageReader::new(dialect);
        for c in chunks {
            t.push(&Bytes::copy_from_slice(c.as_bytes()));
        }
        t.usage()
    }

    fn usage(prompt: u64, candidates: u64, total: u64) -> Option<Usage> {
        Some(Usage { prompt_token_count: prompt, candidates_token_count: candidates, total_token_count: total })
    }

    #[test]
    fn gemini_usage_in_json_and_in_events_split_anywhere() {
        let json = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7, "promptTokensDetails":[{"modality":"TEXT","tokenCount":3}]},"modelVersion":"m"}"#;
        assert_eq!(read(Dialect::Gemini, &[json]), usage(3, 4, 7));
        for split in 1..json.len() {
            assert_eq!(read(Dialect::Gemini, &[&json[..split], &json[split..]]), usage(3, 4, 7), "split at {split}");
        }
        let sse = format!("data: {{\"usageMetadata\":{{\"promptTokenCount\":1}}}}\r\n\r\ndata: {}\r\n\r\n", json);
        assert_eq!(read(Dialect::Gemini, &[&sse]), usage(3, 4, 7), "the last event's counts");
    }

    #[test]
    fn openai_usage_in_json_and_in_the_last_chunk() {
        let json = r#"{"id":"c","choices":[{"message":{"content":"the \"usage\": 1"}}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}"#;
        assert_eq!(read(Dialect::OpenAi, &[json]), usage(5, 6, 11));
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\ndata: [DONE]\n\n";
        assert_eq!(read(Dialect::OpenAi, &[stream]), usage(2, 3, 5));
        assert_eq!(read(Dialect::OpenAi, &["data: {\"usage\":null}\n\ndata: [DONE]\n\n"]), None, "not asked for");
    }

    #[test]
    fn anthropic_usage_in_json_and_across_a_stream() {
        let json = r#"{"id":"msg","type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":9,"output_tokens":4}}"#;
        assert_eq!(read(Dialect::Anthropic, &[json]), usage(9, 4, 13));
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n";
        let filler =
            format!("event: content_block_delta\ndata: {{\"delta\":{{\"text\":\"{}\"}}}}\n\n", "x".repeat(3 * TAIL));
        let end = "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\nevent: message_stop\ndata: {}\n\n";
        assert_eq!(
            read(Dialect::Anthropic, &[start, &filler, end]),
            usage(12, 30, 42),
            "input from the head, output from the tail"
        );
    }

    #[test]
    fn bounded_and_absent() {
        let mut t = UsageReader::new(Dialect::Gemini);
        t.push(&Bytes::from_static(br#"{"usageMetadata":{"totalTokenCount":9}}"#));
        t.push(&Bytes::from(vec![b' '; 3 * TAIL]));
        assert_eq!(t.tail.len(), TAIL);
        assert_eq!(t.usage(), None, "pushed out of the tail");
        let mut a = UsageReader::new(Dialect::Anthropic);
        a.push(&Bytes::from(vec![b' '; 3 * HEAD]));
        assert_eq!(a.head.len(), HEAD);
        assert_eq!(read(Dialect::Gemini, &[r#"{"predictions":[]}"#]), None);
        assert_eq!(read(Dialect::Gemini, &[r#"{"usageMetadata":{"totalTok"#]), None, "cut short");
        assert_eq!(read(Dialect::None, &[r#"{"usageMetadata":{"totalTokenCount":9}}"#]), None, "not a model call");
        assert_eq!(
            read(
                Dialect::Gemini,
                &[r#"{"usageMetadata":{"promptTokenCount":"3","candidatesTokenCount":1.5,"totalTokenCount":5}}"#]
            ),
            usage(0, 0, 5),
            "a count that is not a whole number reads as 0"
        );
        assert_eq!(read(Dialect::OpenAi, &[r#"{"usage":[1,2]}"#]), None, "not an object");
    }
}
