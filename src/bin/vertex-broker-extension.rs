//! The layer's extension executable (`/opt/extensions/vertex-broker-extension`). Lean on
//! purpose: no CLI code, just the broker and the Extensions API loop.

#[tokio::main]
async fn main() {
    if let Err(e) = vertex_broker::broker::extension::run().await {
        eprintln!("vertex-broker-extension: {e}");
        std::process::exit(1);
    }
}
