//! `sandbox`: the simulators alone, with a config block that points a connection at them.

use std::path::Path;
use std::time::{Duration, Instant};

use engine::config::Lang;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig, Edition};
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
    faults: &FaultFlags,
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
    let mut dt_config = DingTalkSandboxConfig::default();
    faults.configure(&mut dt_config);
    let (kd_listener, kd_addr) = server::bind(kingdee_listen)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let (dt_listener, dt_addr) = server::bind(dingtalk_listen)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    // Faults are in place before the block is written: a script that waits for
    // `--config-out` meets them from its first call.
    let kingdee = KingdeeSandbox::new(kd_config.clone(), &seed);
    let dingtalk = DingTalkSandbox::new(dt_config.clone(), &seed);
    faults.apply(&dingtalk, &kingdee);
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
    if faults.is_active() {
        tracing::info!(?faults, "sandbox: faults active from the start");
    }
    tokio::select! {
        r = sandbox::kingdee::serve(kd_listener, kingdee) => r.map_err(|e| runtime_error(lang, &e.to_string())),
        r = sandbox::dingtalk::serve(dt_listener, dingtalk) => r.map_err(|e| runtime_error(lang, &e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The fault flags of `dingbridge sandbox`, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultFlags {
    /// `--latency-ms`: both simulators.
    pub latency_ms: Option<u64>,
    /// `--error-rate`: DingTalk system errors, Kingdee MsgCode 14.
    pub error_rate: Option<f64>,
    /// `--outage-seconds`: HTTP 503 from now on, both simulators.
    pub outage_seconds: Option<u64>,
    /// `--token-ttl-seconds`: DingTalk access-token lifetime.
    pub token_ttl_seconds: Option<u64>,
    /// `--edition`: QPS of every DingTalk app.
    pub edition: Option<Edition>,
}

/// A whole number within `range`, or the one-line error naming `flag` and the range.
fn whole(
    flag: &str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, String> {
    let Some(v) = value else { return Ok(None) };
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{flag}: `{v}` is not allowed; use a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

impl FaultFlags {
    /// Checks the flags as given on the command line (each error is one line naming the flag
    /// and what is allowed).
    pub fn parse(
        latency_ms: Option<&str>,
        error_rate: Option<&str>,
        outage_seconds: Option<&str>,
        token_ttl_seconds: Option<&str>,
        edition: Option<&str>,
    ) -> Result<Self, String> {
        let error_rate = match error_rate {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => Some(f),
                _ => {
                    return Err(format!(
                        "--error-rate: `{v}` is not allowed; use a fraction from 0 to 1 (e.g. 0.05)"
                    ));
                }
            },
        };
        let edition = match edition.map(|e| (e, e.trim().to_ascii_lowercase())) {
            None => None,
            Some((_, e)) if e == "standard" => Some(Edition::Standard),
            Some((_, e)) if e == "professional" => Some(Edition::Professional),
            Some((_, e)) if e == "exclusive" => Some(Edition::Exclusive),
            Some((raw, _)) => {
                return Err(format!(
                    "--edition: `{raw}` is not allowed; use standard (20 QPS), professional (40) or exclusive (60)"
                ));
            }
        };
        Ok(Self {
            latency_ms: whole("--latency-ms", latency_ms, 0..=60_000)?,
            error_rate,
            outage_seconds: whole("--outage-seconds", outage_seconds, 0..=86_400)?,
            token_ttl_seconds: whole("--token-ttl-seconds", token_ttl_seconds, 1..=86_400)?,
            edition,
        })
    }

    /// Whether any flag was given.
    pub fn is_active(&self) -> bool {
        *self != Self::default()
    }

    /// What must be set before the DingTalk simulator is built: token lifetime, edition.
    fn configure(&self, dt: &mut DingTalkSandboxConfig) {
        if let Some(secs) = self.token_ttl_seconds {
            dt.token_ttl = Duration::from_secs(secs);
        }
        if let Some(edition) = self.edition {
            for app in &mut dt.apps {
                app.edition = edition;
            }
        }
    }

    /// The run-time faults, through the simulators' `set_faults`.
    fn apply(&self, dt: &DingTalkSandbox, kd: &KingdeeSandbox) {
        let outage_until = self
            .outage_seconds
            .filter(|s| *s > 0)
            .map(|s| Instant::now() + Duration::from_secs(s));
        dt.set_faults(|f| {
            if let Some(ms) = self.latency_ms {
                f.latency_ms = ms;
            }
            if let Some(rate) = self.error_rate {
                f.error_rate = rate;
            }
            if outage_until.is_some() {
                f.outage_until = outage_until;
            }
        });
        kd.set_faults(|f| {
            if let Some(ms) = self.latency_ms {
                f.latency_ms = ms;
            }
            if let Some(rate) = self.error_rate {
                f.msgcode14_rate = rate;
            }
            if outage_until.is_some() {
                f.outage_until = outage_until;
            }
        });
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
    let edition = match c.apps.first().map(|a| a.edition).unwrap_or_default() {
        Edition::Standard => "standard",
        Edition::Professional => "professional",
        Edition::Exclusive => "exclusive",
    };
    format!(
        "[connections.dingtalk]\nkind = \"dingtalk\"\ncorp_id = \"{corp_id}\"\nagent_id = {agent_id}\n\
         app_key = \"{app_key}\"\napp_secret = \"{app_secret}\"\ncallback_token = \"{}\"\n\
         encoding_aes_key = \"{}\"\noapi_base_url = \"{base_url}\"\napi_base_url = \"{base_url}\"\n\
         edition = \"{edition}\"\n",
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
    #[allow(clippy::unwrap_used)]
    fn fault_flags_are_checked_and_name_the_flag() {
        let f = FaultFlags::parse(
            Some("200"),
            Some("0.25"),
            Some("30"),
            Some("60"),
            Some("Professional"),
        )
        .unwrap();
        assert_eq!(f.latency_ms, Some(200));
        assert_eq!(f.error_rate, Some(0.25));
        assert_eq!(f.edition, Some(Edition::Professional));
        assert!(f.is_active());
        assert!(
            !FaultFlags::parse(None, None, None, None, None)
                .unwrap()
                .is_active()
        );
        for (args, flag) in [
            ([Some("-1"), None, None, None, None], "--latency-ms"),
            ([None, Some("2"), None, None, None], "--error-rate"),
            ([None, Some("NaN"), None, None, None], "--error-rate"),
            ([None, None, Some("1.5"), None, None], "--outage-seconds"),
            ([None, None, None, Some("0"), None], "--token-ttl-seconds"),
            ([None, None, None, None, Some("gold")], "--edition"),
        ] {
            let e = FaultFlags::parse(args[0], args[1], args[2], args[3], args[4]).unwrap_err();
            assert!(e.starts_with(flag) && e.contains("allowed"), "{e}");
            assert_eq!(e.lines().count(), 1);
        }
        let mut dt = DingTalkSandboxConfig::default();
        f.configure(&mut dt);
        assert_eq!(dt.token_ttl, Duration::from_secs(60));
        assert_eq!(dt.apps[0].edition, Edition::Professional);
        assert!(dingtalk_block(&dt, "c", "http://x").contains("edition = \"professional\""));
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
