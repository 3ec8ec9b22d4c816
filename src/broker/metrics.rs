//! The broker's CloudWatch metrics, in Embedded Metric Format on standard output (Lambda sends
//! it to CloudWatch Logs, which turns it into metrics). Aggregated, never a line per request:
//! counts and sums build up between flushes, and a flush writes one line for the broker and one
//! per model and status class. The extension flushes on each INVOKE (before asking Lambda for the
//! next event) and at SHUTDOWN; `serve` once a minute and when it stops.
//!
//! Bounded: at most [`MAX_MODELS`] models between flushes (the rest count as `other`), and a
//! latency list is written out early when it reaches EMF's 100 values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::gateway::usage::Usage;

/// EMF takes at most 100 values per metric in one line.
const MAX_VALUES: usize = 100;
/// Distinct model names kept between flushes; a request names the model, so this is bounded.
pub const MAX_MODELS: usize = 32;

/// One gateway call, as metrics count it.
#[derive(Debug, Clone)]
pub struct VertexCallMetric<'a> {
    pub model: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub attempts: u32,
    /// Attempts answered 429 or 5xx, or that got no answer.
    pub upstream_errors: u32,
    pub usage: Option<Usage>,
}

/// The broker's own counts: atomics, as the token endpoint's cache hits count here too.
#[derive(Default)]
struct BrokerCounts {
    token_requests: AtomicU64,
    mints: AtomicU64,
    mint_failures: AtomicU64,
    mint_ms: Mutex<Vec<f64>>,
    upstream_errors: AtomicU64,
    key_reloads: AtomicU64,
    federation_exchanges: AtomicU64,
    token_echoes: AtomicU64,
}

#[derive(Default)]
struct VertexCounts {
    calls: u64,
    attempts: u64,
    upstream_errors: u64,
    latency_ms: Vec<f64>,
    prompt_tokens: u64,
    candidates_tokens: u64,
    total_tokens: u64,
}

/// Where EMF lines go: standard output (tests collect them in memory).
type Sink = Box<dyn Fn(&str) + Send + Sync>;

/// The aggregate since the last flush.
pub struct Metrics {
    namespace: Option<String>,
    function_name: String,
    broker: BrokerCounts,
    /// Per model, per status class: looked up by `&str`, so a call allocates nothing once its
    /// model has been seen since the last flush.
    vertex: Mutex<BTreeMap<String, BTreeMap<&'static str, VertexCounts>>>,
    sink: Sink,
}

impl Metrics {
    /// Metrics under `namespace` (`None`: off, nothing is kept or written), dimension
    /// `FunctionName` = `function_name`.
    pub fn new(namespace: Option<String>, function_name: String) -> Self {
        Self::with_sink(namespace, function_name, Box::new(crate::telemetry::emit))
    }

    fn with_sink(namespace: Option<String>, function_name: String, sink: Sink) -> Self {
        Self { namespace, function_name, broker: BrokerCounts::default(), vertex: Mutex::default(), sink }
    }

    /// Metrics that are off.
    pub fn off() -> Self {
        Self::new(None, String::new())
    }

    fn on(&self) -> bool {
        self.namespace.is_some()
    }

    fn count(&self, counter: impl FnOnce(&BrokerCounts) -> &AtomicU64) {
        if self.on() {
            counter(&self.broker).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request to the metadata token or identity endpoint.
    pub fn token_request(&self) {
        self.count(|b| &b.token_requests);
    }

    /// A token minted (or not) and how long it took.
    pub fn mint(&self, took: Duration, ok: bool) {
        if !self.on() {
            return;
        }
        self.count(|b| if ok { &b.mints } else { &b.mint_failures });
        let full = {
            let mut values = crate::lock(&self.broker.mint_ms);
            values.push(ms(took));
            values.len() >= MAX_VALUES
        };
        if full {
            self.flush_broker(now_ms());
        }
    }

    /// A call to Google on the token path that failed.
    pub fn upstream_error(&self) {
        self.count(|b| &b.upstream_errors);
    }

    /// A key re-read from the secret because its version moved.
    pub fn key_reload(&self) {
        self.count(|b| &b.key_reloads);
    }

    /// Answers that echoed the bearer token (masked).
    pub fn token_echoes(&self, n: u32) {
        if self.on() {
            self.broker.token_echoes.fetch_add(u64::from(n), Ordering::Relaxed);
        }
    }

    /// An AWS-to-Google token exchange (federation).
    pub fn federation_exchange(&self) {
        self.count(|b| &b.federation_exchanges);
    }

    /// A gateway call, once its answer has ended.
    pub fn vertex_call(&self, call: &VertexCallMetric<'_>) {
        if !self.on() {
            return;
        }
        let class = status_class(call.status);
        let full = {
            let mut vertex = crate::lock(&self.vertex);
            let model =
                if vertex.len() >= MAX_MODELS && !vertex.contains_key(call.model) { "other" } else { call.model };
            if !vertex.contains_key(model) {
                vertex.insert(model.to_string(), BTreeMap::new());
            }
            let classes = vertex.get_mut(model).expect("inserted above");
            let v = classes.entry(class).or_default();
            v.calls += 1;
            v.attempts += u64::from(call.attempts);
            v.upstream_errors += u64::from(call.upstream_errors);
            v.latency_ms.push(ms(call.latency));
            if let Some(u) = call.usage {
                v.prompt_tokens += u.prompt_token_count;
                v.candidates_tokens += u.candidates_token_count;
                v.total_tokens += u.total_token_count;
            }
            if v.latency_ms.len() >= MAX_VALUES {
                classes.remove(class).map(|counts| (model.to_string(), class, counts))
            } else {
                None
            }
        };
        if let Some((model, class, counts)) = full {
            (self.sink)(&self.vertex_line(&model, class, &counts, now_ms()));
        }
    }

    /// Writes what has built up since the last flush, and starts again from zero.
    pub fn flush(&self) {
        if !self.on() {
            return;
        }
        let now = now_ms();
        self.flush_broker(now);
        let vertex = std::mem::take(&mut *crate::lock(&self.vertex));
        for (model, classes) in vertex {
            for (class, counts) in classes {
                (self.sink)(&self.vertex_line(&model, class, &counts, now));
            }
        }
    }

    /// Flushes every `period`, forever (`serve`; the extension flushes on events instead, as a
    /// frozen Lambda runs no timers).
    pub async fn flush_every(self: std::sync::Arc<Self>, period: Duration) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.flush();
        }
    }

    fn flush_broker(&self, now: i64) {
        let b = &self.broker;
        let take = |n: &AtomicU64| n.swap(0, Ordering::Relaxed);
        let counts = [
            ("TokenRequests", take(&b.token_requests)),
            ("Mints", take(&b.mints)),
            ("MintFailures", take(&b.mint_failures)),
            ("UpstreamErrors", take(&b.upstream_errors)),
            ("KeyReloads", take(&b.key_reloads)),
            ("FederationExchanges", take(&b.federation_exchanges)),
            ("TokenEchoesMasked", take(&b.token_echoes)),
        ];
        let mint_ms = std::mem::take(&mut *crate::lock(&b.mint_ms));
        if counts.iter().all(|(_, n)| *n == 0) && mint_ms.is_empty() {
            return;
        }
        let mut line = Line::new(&[&["FunctionName"]]);
        line.dimension("FunctionName", &self.function_name);
        for (name, n) in counts {
            line.count(name, n);
        }
        line.values("MintLatency", &mint_ms);
        (self.sink)(&line.render(self.namespace.as_deref().unwrap_or_default(), now));
    }

    fn vertex_line(&self, model: &str, class: &str, v: &VertexCounts, now: i64) -> String {
        let mut line = Line::new(&[&["FunctionName", "Model"], &["FunctionName", "Model", "StatusClass"]]);
        line.dimension("FunctionName", &self.function_name);
        line.dimension("Model", model);
        line.dimension("StatusClass", class);
        line.count("VertexCalls", v.calls);
        line.count("VertexAttempts", v.attempts);
        line.count("VertexUpstreamErrors", v.upstream_errors);
        line.values("VertexLatency", &v.latency_ms);
        line.count("PromptTokens", v.prompt_tokens);
        line.count("CandidatesTokens", v.candidates_tokens);
        line.count("TotalTokens", v.total_tokens);
        line.render(self.namespace.as_deref().unwrap_or_default(), now)
    }
}

/// One EMF line under construction: every metric it carries is declared in `_aws`, every
/// dimension has a value.
struct Line {
    dimensions: Vec<Vec<&'static str>>,
    metrics: Vec<Value>,
    members: Map<String, Value>,
}

impl Line {
    fn new(dimensions: &[&[&'static str]]) -> Self {
        Self { dimensions: dimensions.iter().map(|d| d.to_vec()).collect(), metrics: Vec::new(), members: Map::new() }
    }
    fn dimension(&mut self, name: &str, value: &str) {
        self.members.insert(name.to_string(), json!(value));
    }
    fn count(&mut self, name: &str, n: u64) {
        self.metrics.push(json!({"Name": name, "Unit": "Count"}));
        self.members.insert(name.to_string(), json!(n));
    }
    /// Milliseconds, one value per event (EMF's list form); left out when there are none.
    fn values(&mut self, name: &str, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        self.metrics.push(json!({"Name": name, "Unit": "Milliseconds"}));
        self.members.insert(name.to_string(), json!(values));
    }
    fn render(mut self, namespace: &str, timestamp_ms: i64) -> String {
        self.members.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": self.dimensions, "Metrics": self.metrics}]
            }),
        );
        Value::Object(self.members).to_string()
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn collecting() -> (Metrics, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let m = Metrics::with_sink(
            Some("VertexBroker".into()),
            "fn".into(),
            Box::new(move |l| sink.lock().unwrap().push(l.to_string())),
        );
        (m, lines)
    }

    fn call(model: &str, status: u16) -> VertexCallMetric<'_> {
        VertexCallMetric {
            model,
            status,
            latency: Duration::from_millis(12),
            attempts: 1,
            upstream_errors: 0,
            usage: Some(Usage { prompt_token_count: 2, candidates_token_count: 3, total_token_count: 5 }),
        }
    }

    /// Every dimension and metric `_aws` declares is a member of the line.
    fn assert_valid_emf(line: &str) -> Value {
        let v: Value = serde_json::from_str(line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "VertexBroker");
        assert!(v["_aws"]["Timestamp"].is_i64());
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(v[d.as_str().unwrap()].is_string(), "dimension {d} in {line}");
            }
        }
        for m in directive["Metrics"].as_array().unwrap() {
            let value = &v[m["Name"].as_str().unwrap()];
            assert!(value.is_number() || value.is_array(), "metric {m} in {line}");
        }
        v
    }

    #[test]
    fn aggregates_by_model_and_status_class_until_flushed() {
        let (m, lines) = collecting();
        for _ in 0..3 {
            m.vertex_call(&call("gemini", 200));
        }
        m.vertex_call(&VertexCallMetric { attempts: 3, upstream_errors: 2, ..call("gemini", 429) });
        m.token_request();
        m.mint(Duration::from_millis(40), true);
        assert!(lines.lock().unwrap().is_empty(), "nothing is written per request");
        m.flush();
        let lines = std::mem::take(&mut *lines.lock().unwrap());
        assert_eq!(lines.len(), 3, "{lines:#?}");
        let parsed: Vec<Value> = lines.iter().map(|l| assert_valid_emf(l)).collect();
        let ok = parsed.iter().find(|v| v["StatusClass"] == "2xx").unwrap();
        assert_eq!((ok["VertexCalls"].as_u64(), ok["TotalTokens"].as_u64()), (Some(3), Some(15)));
        assert_eq!(ok["VertexLatency"].as_array().unwrap().len(), 3);
        let limited = parsed.iter().find(|v| v["StatusClass"] == "4xx").unwrap();
        assert_eq!((limited["VertexAttempts"].as_u64(), limited["VertexUpstreamErrors"].as_u64()), (Some(3), Some(2)));
        let broker = parsed.iter().find(|v| v.get("Model").is_none()).unwrap();
        assert_eq!((broker["TokenRequests"].as_u64(), broker["Mints"].as_u64()), (Some(1), Some(1)));
        m.flush();
        assert!(m.vertex.lock().unwrap().is_empty(), "a flush starts again from zero");
    }

    #[test]
    fn bounded_by_models_and_values() {
        let (m, lines) = collecting();
        let names: Vec<String> = (0..MAX_MODELS + 5).map(|i| format!("model-{i}")).collect();
        for n in &names {
            m.vertex_call(&call(n, 200));
        }
        assert_eq!(m.vertex.lock().unwrap().len(), MAX_MODELS + 1, "the rest count as `other`");
        for _ in 0..MAX_VALUES {
            m.vertex_call(&call("model-0", 200));
        }
        let early = lines.lock().unwrap().clone();
        assert_eq!(early.len(), 1, "100 latencies are written out at once");
        assert_eq!(assert_valid_emf(&early[0])["VertexLatency"].as_array().unwrap().len(), MAX_VALUES);
        let off = Metrics::off();
        off.vertex_call(&call("m", 200));
        assert!(off.vertex.lock().unwrap().is_empty());
    }
}
