//! `sandbox`: the simulators alone, with a config block that points a connection at them.

use std::path::Path;

use engine::config::Lang;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;

use super::runtime_error;
use crate::Failure;
use crate::messages::Msg;

pub async fn sandbox(
    dingtalk_listen: &str,
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
    let kd_config = KingdeeSandboxConfig::default();
    let dt_config = DingTalkSandboxConfig::default();
    let (kd_listener, kd_addr) = server::bind(kingdee_listen)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let (dt_listener, dt_addr) = server::bind(dingtalk_listen)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let block = format!(
        "{}\n{}",
        dingtalk_block(
            &dt_config,
            &seed.company.corp_id,
            &format!("http://{dt_addr}")
        ),
        kingdee_block(&kd_config, &format!("http://{kd_addr}/k3cloud/"))
    );
    if let Some(path) = config_out {
        std::fs::write(path, &block)
            .map_err(|e| runtime_error(lang, &format!("--config-out {}: {e}", path.display())))?;
    }
    println!(
        "{}",
        Msg::SandboxReady {
            dingtalk: &format!("http://{dt_addr}"),
            kingdee: &format!("http://{kd_addr}"),
            users: seed.users.len(),
            depts: seed.departments.len(),
        }
        .text(lang)
    );
    println!("{block}");
    let kingdee = KingdeeSandbox::new(kd_config, &seed);
    let dingtalk = DingTalkSandbox::new(dt_config, &seed);
    tokio::select! {
        r = sandbox::kingdee::serve(kd_listener, kingdee) => r.map_err(|e| runtime_error(lang, &e.to_string())),
        r = sandbox::dingtalk::serve(dt_listener, dingtalk) => r.map_err(|e| runtime_error(lang, &e.to_string())),
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

/// The `[connections.dingtalk]` block for dingbridge.toml.
fn dingtalk_block(c: &DingTalkSandboxConfig, corp_id: &str, base_url: &str) -> String {
    let (app_key, app_secret, agent_id) = c
        .apps
        .first()
        .map(|a| (a.app_key.as_str(), a.app_secret.as_str(), a.agent_id))
        .unwrap_or_default();
    format!(
        "[connections.dingtalk]\nkind = \"dingtalk\"\ncorp_id = \"{corp_id}\"\nagent_id = {agent_id}\n\
         app_key = \"{app_key}\"\napp_secret = \"{app_secret}\"\ncallback_token = \"{}\"\n\
         encoding_aes_key = \"{}\"\noapi_base_url = \"{base_url}\"\napi_base_url = \"{base_url}\"\n\
         edition = \"standard\"\n",
        sandbox::dingtalk::DEFAULT_CALLBACK_TOKEN,
        sandbox::dingtalk::DEFAULT_CALLBACK_AES_KEY,
    )
}

/// The `[connections.kingdee]` block for dingbridge.toml.
fn kingdee_block(c: &KingdeeSandboxConfig, base_url: &str) -> String {
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
    fn the_printed_blocks_are_valid_connections() {
        let block = format!(
            "{}\n{}",
            dingtalk_block(
                &DingTalkSandboxConfig::default(),
                "dingcorp",
                "http://127.0.0.1:8089"
            ),
            kingdee_block(
                &KingdeeSandboxConfig::default(),
                "http://127.0.0.1:8090/k3cloud/"
            )
        );
        let parsed = engine::config::Config::from_str(&block, "block.toml");
        let Ok(cfg) = parsed else {
            panic!("{:?}", parsed.err().map(|e| e.to_string()))
        };
        assert_eq!(cfg.connections.len(), 2);
    }
}
