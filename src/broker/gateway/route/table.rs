//! The one table of what the gateway forwards: each row a path shape, a method, and what the call
//! is (its name in audit lines, where its model is named, how its answer counts usage). A path
//! that fits no row is 404; one that fits a row under another method is 405. Nothing that
//! creates, deploys, tunes or deletes models or endpoints is a row.

/// Where the model a call names is read, besides its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyModel {
    /// The path says all (or nothing: a cache or job by id).
    No,
    /// The body's `model` names it (count-tokens, a cache or batch job being created).
    Model,
    /// The body's `model` names it and `"stream": true` makes the answer a stream (OpenAI's
    /// Chat Completions).
    ModelAndStream,
}

/// How an answer states its token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Gemini's `usageMetadata`.
    Gemini,
    /// OpenAI's `usage.{prompt,completion,total}_tokens`.
    OpenAi,
    /// Anthropic's `usage.{input,output}_tokens` (in a stream: `message_start`, `message_delta`).
    Anthropic,
    /// No usage (reads, caches, jobs, token counts).
    None,
}

/// Where a row's path sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Under `projects/{p}/locations/{l}/`.
    Located,
    /// Right under the version, routed to `VERTEX_BROKER_VERTEX_LOCATION` (the GenAI SDK's
    /// `models.get`: `GET {v}/publishers/google/models/M`).
    Unlocated,
}

/// One row. `shape` is matched segment by segment: a literal, `{publisher}` and `{model}` (the
/// model called), `{endpoint}` (a deployed endpoint, its model for the allowlist), `{id}` (any
/// resource id); the last segment may end in `:{verb}` (one of `verbs`) or a literal `:verb`.
#[derive(Debug)]
pub struct Row {
    /// Where the path sits.
    pub scope: Scope,
    /// The path after the scope.
    pub shape: &'static str,
    /// The one HTTP method it forwards (`POST`, `GET`, `PATCH`, `DELETE`).
    pub method: &'static str,
    /// The verbs `:{verb}` may be.
    pub verbs: &'static [&'static str],
    /// The call's name in audit lines; empty: the verb.
    pub name: &'static str,
    /// Whether the body names the model.
    pub body: BodyModel,
    /// How the answer states usage.
    pub dialect: Dialect,
    /// A publisher model's call: a regional 429 may be retried at `global`.
    pub model_call: bool,
    /// The query parameters it takes; any other is refused (Google's system parameters, such
    /// as `$httpMethod`, would change what the call does).
    pub query: &'static [&'static str],
}

/// What a publisher model is asked to do.
const MODEL_VERBS: &[&str] = &[
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "computeTokens",
    "predict",
    "rawPredict",
    "streamRawPredict",
    "serverStreamingPredict",
    "embedContent",
    "batchEmbedContents",
    "predictLongRunning",
    "fetchPredictOperation",
];
/// What a deployed endpoint is asked to do.
const ENDPOINT_VERBS: &[&str] = &[
    "predict",
    "rawPredict",
    "streamRawPredict",
    "serverStreamingPredict",
    "explain",
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "computeTokens",
    "predictLongRunning",
    "fetchPredictOperation",
];
/// Verbs whose answer is a stream.
pub const STREAM_VERBS: &[&str] = &["streamGenerateContent", "streamRawPredict", "serverStreamingPredict"];

const fn row(method: &'static str, shape: &'static str, name: &'static str) -> Row {
    Row {
        scope: Scope::Located,
        shape,
        method,
        verbs: &[],
        name,
        body: BodyModel::No,
        dialect: Dialect::None,
        model_call: false,
        query: &[],
    }
}

/// What a model call's query may say: `alt=sse` (a stream as server-sent events).
const CALL: &[&str] = &["alt"];
/// What a list's query may say.
const LIST: &[&str] = &["pageSize", "pageToken", "filter"];
/// What an update's query may say.
const UPDATE: &[&str] = &["updateMask"];

/// The table, first match wins (the Anthropic rows before the general publisher row).
pub const ROWS: &[Row] = &[
    Row { body: BodyModel::Model, ..row("POST", "publishers/anthropic/models/count-tokens:rawPredict", "countTokens") },
    Row {
        verbs: &["rawPredict", "streamRawPredict"],
        dialect: Dialect::Anthropic,
        model_call: true,
        query: CALL,
        ..row("POST", "publishers/anthropic/models/{model}:{verb}", "")
    },
    Row {
        verbs: MODEL_VERBS,
        dialect: Dialect::Gemini,
        model_call: true,
        query: CALL,
        ..row("POST", "publishers/{publisher}/models/{model}:{verb}", "")
    },
    row("GET", "publishers/{publisher}/models/{model}", "get"),
    row("GET", "publishers/{publisher}/models/{model}/operations/{id}", "operations.get"),
    Row {
        body: BodyModel::ModelAndStream,
        dialect: Dialect::OpenAi,
        ..row("POST", "endpoints/openapi/chat/completions", "chat.completions")
    },
    Row {
        verbs: ENDPOINT_VERBS,
        dialect: Dialect::Gemini,
        query: CALL,
        ..row("POST", "endpoints/{endpoint}:{verb}", "")
    },
    row("GET", "endpoints/{endpoint}", "get"),
    row("GET", "endpoints/{endpoint}/operations/{id}", "operations.get"),
    row("GET", "models/{id}", "get"),
    Row { body: BodyModel::Model, ..row("POST", "cachedContents", "cachedContents.create") },
    Row { query: LIST, ..row("GET", "cachedContents", "cachedContents.list") },
    row("GET", "cachedContents/{id}", "cachedContents.get"),
    Row { query: UPDATE, ..row("PATCH", "cachedContents/{id}", "cachedContents.patch") },
    row("DELETE", "cachedContents/{id}", "cachedContents.delete"),
    Row { body: BodyModel::Model, ..row("POST", "batchPredictionJobs", "batchPredictionJobs.create") },
    Row { query: LIST, ..row("GET", "batchPredictionJobs", "batchPredictionJobs.list") },
    row("GET", "batchPredictionJobs/{id}", "batchPredictionJobs.get"),
    row("POST", "batchPredictionJobs/{id}:cancel", "batchPredictionJobs.cancel"),
    Row { scope: Scope::Unlocated, ..row("GET", "publishers/{publisher}/models/{model}", "get") },
];

/// What a path's segments fit in a row's shape.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fit<'a> {
    /// `{publisher}`, or the literal publisher of the row.
    pub publisher: Option<&'a str>,
    /// `{model}`.
    pub model: Option<&'a str>,
    /// `{endpoint}`.
    pub endpoint: Option<&'a str>,
    /// `:{verb}`.
    pub verb: Option<&'static str>,
}

impl Row {
    /// What `segments` fit, if they fit this row's shape (any method).
    pub fn fit<'a>(&self, segments: &[&'a str]) -> Option<Fit<'a>> {
        // Walked in place, not collected, and left at the first mismatch: every row is tried on
        // every call.
        let mut shape = self.shape.split('/');
        let len = segments.len();
        let mut fit = Fit::default();
        let mut previous = "";
        for (i, got) in segments.iter().enumerate() {
            let want = shape.next()?;
            let last = i + 1 == len;
            let (want, want_verb) = match want.split_once(':') {
                Some((w, v)) => (w, Some(v)),
                None => (want, None),
            };
            let (got, got_verb) = match got.split_once(':') {
                Some((g, v)) if last => (g, Some(v)),
                Some(_) => return None,
                None => (*got, None),
            };
            match (want_verb, got_verb) {
                (None, None) => {}
                // The table's own string: the call's name without a copy of the path's.
                (Some("{verb}"), Some(v)) => fit.verb = Some(self.verbs.iter().copied().find(|w| *w == v)?),
                (Some(w), Some(v)) if w == v => fit.verb = Some(w),
                _ => return None,
            }
            match want {
                "{publisher}" => fit.publisher = Some(got),
                "{model}" => fit.model = Some(got),
                "{endpoint}" => fit.endpoint = Some(got),
                "{id}" => {}
                literal if literal == got => {
                    if previous == "publishers" {
                        fit.publisher = Some(got);
                    }
                }
                _ => return None,
            }
            previous = want;
        }
        // The shape has more segments than the path.
        shape.next().is_none().then_some(fit)
    }
}
