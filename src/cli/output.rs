//! The one path from a command to standard output: text for people, JSON for scripts. A
//! closed pipe (`vertex-broker dev | head -4`) ends the process quietly instead of panicking.

use std::fmt::Display;
use std::io::Write;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON document, for scripts.
    Json,
}

// By hand rather than derived: clap would turn the variants' doc comments into a long
// "Possible values" block in every command's --help, where `[possible values: text, json]` says it.
impl clap::ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[Format::Text, Format::Json]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Format::Text => "text",
            Format::Json => "json",
        }))
    }
}

/// Writes a command's output in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Text or JSON.
    pub format: Format,
}

impl Printer {
    /// A printer writing `format`.
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A line of progress for people; nothing in JSON, where only the result is printed.
    pub fn progress(&self, line: impl Display) {
        if !self.json() {
            write_line(&line.to_string());
        }
    }

    /// The command's result: `text` for people, `json` (one document) for scripts.
    pub fn result(&self, text: impl Display, json: serde_json::Value) {
        match self.format {
            Format::Text => write_line(&text.to_string()),
            Format::Json => write_line(&serde_json::to_string_pretty(&json).unwrap_or_default()),
        }
    }
}

/// One line to stdout, flushed (so a pipe sees it now). When the reader has gone, there is
/// nobody left to tell: exit 0 as a SIGPIPE'd Unix tool would, without a panic message.
fn write_line(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}
