//! Serves the Kingdee sandbox with the builtin seed.
//!
//! `cargo run -p sandbox --example kingdee_sandbox -- 127.0.0.1:8765`
//! prints `KINGDEE_SANDBOX_URL=http://127.0.0.1:8765/k3cloud/` once it is listening.

use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig, serve};
use sandbox::seed::Seed;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let sandbox = KingdeeSandbox::new(KingdeeSandboxConfig::default(), &Seed::builtin());
    println!("KINGDEE_SANDBOX_URL=http://{local}/k3cloud/");
    println!("admin: http://{local}/_sandbox/kingdee/");
    serve(listener, sandbox).await
}
