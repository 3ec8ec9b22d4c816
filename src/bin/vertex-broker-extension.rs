//! The layer's extension executable (`/opt/extensions/vertex-broker-extension`). Lean on
//! purpose: no CLI code, just the broker and the Extensions API loop.
//!
//! One thread: a Lambda environment runs one invocation at a time, a cached token costs
//! microseconds, and a single thread keeps memory and cross-core contention down.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = vertex_broker::broker::extension::run().await {
        eprintln!("vertex-broker-extension: {e}");
        std::process::exit(1);
    }
}
