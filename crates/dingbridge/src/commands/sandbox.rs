//! `sandbox`: the simulators alone, with a config block that points a connection at them.

use std::path::Path;

use engine::config::Lang;
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;

use super::runtime_error;
use crate::Failure;
use crate::messages::Msg;

pub async fn sandbox(
    kingdee_listen: &str,
    seed: Option<&Path>,
    scale: Option<&str>,
    config_out: Option<&Path>,
    lang: Lang,
) -> Result<(), Failure> {
    let seed = match (seed, scale) {
        (Some(path), _) => Seed::load(path)
            .map_err(|e| Failure::input(format!("--seed {}: {e}", path.display())))?,
        (None, Some(scale)) => {
            let (users, depts) = parse_scale(scale).map_err(Failure::input)?;
            Seed::generate(users, depts)
        }
        (None, None) => Seed::builtin(),
    };
    let config = KingdeeSandboxConfig::default();
    let (listener, addr) = server::bind(kingdee_listen)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let block = connection_block(&config, &format!("http://{addr}/k3cloud/"));
    if let Some(path) = config_out {
        std::fs::write(path, &block)
            .map_err(|e| runtime_error(lang, &format!("--config-out {}: {e}", path.display())))?;
    }
    println!(
        "{}",
        Msg::SandboxReady {
            kingdee: &format!("http://{addr}/k3cloud/"),
            admin: &format!("http://{addr}/_sandbox/kingdee/"),
            users: seed.users.len(),
            depts: seed.departments.len(),
        }
        .text(lang)
    );
    println!("{block}");
    let sandbox = KingdeeSandbox::new(config, &seed);
    tokio::select! {
        r = sandbox::kingdee::serve(listener, sandbox) => r.map_err(|e| runtime_error(lang, &e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `users=N,depts=M` (either may be left out).
fn parse_scale(s: &str) -> Result<(usize, usize), String> {
    let (mut users, mut depts) = (200, 20);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            format!("--scale: `{part}` is not key=value; e.g. --scale users=100000,depts=5000")
        })?;
        let n: usize = value
            .parse()
            .map_err(|_| format!("--scale: `{value}` is not a whole number (in `{part}`)"))?;
        match key {
            "users" => users = n,
            "depts" => depts = n,
            other => {
                return Err(format!(
                    "--scale: unknown key `{other}`; allowed: users, depts"
                ));
            }
        }
    }
    if users > 100_000 || depts > 5_000 || depts == 0 {
        return Err(format!(
            "--scale: users must be at most 100000 and depts between 1 and 5000 (got users={users}, depts={depts})"
        ));
    }
    Ok((users, depts))
}

/// The `[connections.kingdee]` block for dingbridge.toml.
fn connection_block(c: &KingdeeSandboxConfig, base_url: &str) -> String {
    format!(
        "[connections.kingdee]\nkind = \"kingdee\"\nbase_url = \"{base_url}\"\nacct_id = \"{}\"\n\
         user_name = \"{}\"\napp_id = \"{}\"\napp_secret = \"{}\"\nlcid = 2052\nauth = \"signature\"\n",
        c.acct_id, c.user_name, c.app_id, c.app_secret
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_parsed_and_bounded() {
        assert_eq!(parse_scale("users=1000,depts=50"), Ok((1000, 50)));
        assert!(parse_scale("users=1000000").is_err());
        assert!(parse_scale("people=3").is_err_and(|e| e.contains("allowed: users, depts")));
        assert!(parse_scale("users=many").is_err());
    }

    #[test]
    fn the_printed_block_is_a_valid_connection() {
        let block = connection_block(
            &KingdeeSandboxConfig::default(),
            "http://127.0.0.1:8090/k3cloud/",
        );
        let parsed = engine::config::Config::from_str(&block, "block.toml");
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
    }
}
