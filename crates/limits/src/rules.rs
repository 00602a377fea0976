//! Limit rules, per-connection limit settings and the platform presets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Share of a documented quota the presets pace to. A GCRA limiter with a burst of 1 at
/// `0.97 × quota` never lets more than `quota` calls into any window of the quota's length
/// (see the preset docs), yet uses about 96–97 % of the quota once timer slack is counted.
pub const PRESET_HEADROOM: f64 = 0.97;

/// Share of a quota for limits whose penalty is long (DingTalk robots: a 10-minute block).
pub const PRESET_HEADROOM_STRICT: f64 = 0.95;

/// A GCRA rate: `per_second` calls per second on average (fractional rates such as
/// `20.0 / 60.0` are fine), with up to `burst` calls at once after a quiet period.
///
/// In TOML either `per_second` or `per_minute` is given (not both), plus an optional `burst`
/// (default 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct LimitRule {
    pub per_second: f64,
    pub burst: u32,
}

impl LimitRule {
    /// `per_second` calls per second, `burst` at once.
    pub const fn per_second(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    /// `per_minute` calls per minute, `burst` at once.
    pub fn per_minute(per_minute: f64, burst: u32) -> Self {
        Self {
            per_second: per_minute / 60.0,
            burst,
        }
    }

    fn check(&self, path: &str) -> Result<(), LimitsError> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(LimitsError::new(
                format!("{path}.per_second"),
                self.per_second,
                Requirement::Positive,
            ));
        }
        if self.burst == 0 {
            return Err(LimitsError::new(
                format!("{path}.burst"),
                0.0,
                Requirement::AtLeastOne,
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    per_second: Option<f64>,
    per_minute: Option<f64>,
    #[serde(default = "one")]
    burst: u32,
}

fn one() -> u32 {
    1
}

impl TryFrom<RawRule> for LimitRule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, Self::Error> {
        match (raw.per_second, raw.per_minute) {
            (Some(s), None) => Ok(Self::per_second(s, raw.burst)),
            (None, Some(m)) => Ok(Self::per_minute(m, raw.burst)),
            (Some(_), Some(_)) => Err("give either `per_second` or `per_minute`, not both".into()),
            (None, None) => Err("missing field `per_second` (or `per_minute`)".into()),
        }
    }
}

/// How a connection reacts to "throttled" answers (AIMD): a multiplicative step down, then an
/// additive step up after a quiet period, never above the configured rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveSettings {
    /// Off: rates stay as configured; only an explicit `retry_after` hint pauses a group.
    pub enabled: bool,
    /// On a throttled answer the effective rate is multiplied by this (0 < f < 1).
    pub decrease_factor: f64,
    /// The effective rate never drops below `configured × min_fraction` (0 < f ≤ 1).
    pub min_fraction: f64,
    /// Each step up adds `configured × increase_fraction` (0 < f ≤ 1).
    pub increase_fraction: f64,
    /// A step up needs this many seconds without a throttled answer (or another step) first.
    pub increase_interval_seconds: f64,
    /// Throttled answers within this many seconds of a step down do not step down again
    /// (calls in flight when the quota ran out all come back throttled together).
    pub decrease_cooldown_seconds: f64,
    /// A group without a rate rule that is throttled without a `retry_after` hint pauses this
    /// many seconds (it has no rate to lower).
    pub pause_seconds: f64,
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            decrease_factor: 0.5,
            min_fraction: 0.1,
            increase_fraction: 0.1,
            increase_interval_seconds: 10.0,
            decrease_cooldown_seconds: 1.0,
            pause_seconds: 1.0,
        }
    }
}

impl AdaptiveSettings {
    fn check(&self) -> Result<(), LimitsError> {
        let unit = |name: &str, v: f64, req: Requirement| {
            let ok = v.is_finite()
                && match req {
                    Requirement::OpenUnit => v > 0.0 && v < 1.0,
                    Requirement::HalfOpenUnit => v > 0.0 && v <= 1.0,
                    Requirement::NonNegative => v >= 0.0,
                    Requirement::Positive => v > 0.0,
                    Requirement::AtLeastOne => v >= 1.0,
                };
            if ok {
                Ok(())
            } else {
                Err(LimitsError::new(format!("adaptive.{name}"), v, req))
            }
        };
        unit(
            "decrease_factor",
            self.decrease_factor,
            Requirement::OpenUnit,
        )?;
        unit("min_fraction", self.min_fraction, Requirement::HalfOpenUnit)?;
        unit(
            "increase_fraction",
            self.increase_fraction,
            Requirement::HalfOpenUnit,
        )?;
        unit(
            "increase_interval_seconds",
            self.increase_interval_seconds,
            Requirement::NonNegative,
        )?;
        unit(
            "decrease_cooldown_seconds",
            self.decrease_cooldown_seconds,
            Requirement::NonNegative,
        )?;
        unit(
            "pause_seconds",
            self.pause_seconds,
            Requirement::NonNegative,
        )?;
        Ok(())
    }
}

/// Limits of one connection: a concurrency cap, a rate per API group (a group without its own
/// rule uses `default_rule`; a group named `base:detail` without its own rule uses the rule of
/// `base` if there is one, with a limiter of its own), an optional rate over all groups
/// together (`total`), and the adaptive reaction to throttling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Calls in flight at once over the whole connection.
    pub concurrency: usize,
    /// Rule for groups not listed in `groups`; `None` = no rate limit for them.
    pub default_rule: Option<LimitRule>,
    /// Rules per API group.
    pub groups: BTreeMap<String, LimitRule>,
    /// Rate over all groups of the connection together (not adaptive).
    pub total: Option<LimitRule>,
    pub adaptive: AdaptiveSettings,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            concurrency: 16,
            default_rule: None,
            groups: BTreeMap::new(),
            total: None,
            adaptive: AdaptiveSettings::default(),
        }
    }
}

/// DingTalk organisation editions; the per-app per-API QPS quota depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DingTalkEdition {
    #[default]
    Standard,
    Professional,
    Exclusive,
}

impl DingTalkEdition {
    /// Every edition, in the order of the config documentation.
    pub const ALL: [DingTalkEdition; 3] = [Self::Standard, Self::Professional, Self::Exclusive];

    /// Documented calls per second per app per API (protocol notes §7 and §1.6).
    pub const fn api_qps(self) -> u32 {
        match self {
            Self::Standard => 20,
            Self::Professional => 40,
            Self::Exclusive => 60,
        }
    }

    /// The name used in `dingbridge.toml`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Professional => "professional",
            Self::Exclusive => "exclusive",
        }
    }

    /// Parses the config name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl fmt::Display for DingTalkEdition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DingTalk per-source-IP quota: 10,000 requests per 20 s (then a 5-minute block).
pub const DINGTALK_IP_QUOTA_PER_SECOND: f64 = 10_000.0 / 20.0;
/// DingTalk custom group robots: 20 messages per minute per robot (then a 10-minute block).
pub const DINGTALK_ROBOT_QUOTA_PER_MINUTE: f64 = 20.0;

impl ConnectionLimits {
    /// The DingTalk preset for an edition: every API group at `PRESET_HEADROOM ×` the
    /// edition's per-API QPS with a burst of 1 (so no 1-second window sees more than the
    /// quota), the `robot` group (and `robot:<token>` groups, one limiter per robot) at 95 % of
    /// 20 per minute, a connection-wide total under the per-IP quota, concurrency 32.
    pub fn dingtalk(edition: DingTalkEdition) -> Self {
        let mut groups = BTreeMap::new();
        groups.insert(
            "robot".to_owned(),
            LimitRule::per_minute(DINGTALK_ROBOT_QUOTA_PER_MINUTE * PRESET_HEADROOM_STRICT, 1),
        );
        Self {
            concurrency: 32,
            default_rule: Some(LimitRule::per_second(
                f64::from(edition.api_qps()) * PRESET_HEADROOM,
                1,
            )),
            groups,
            total: Some(LimitRule::per_second(
                DINGTALK_IP_QUOTA_PER_SECOND * PRESET_HEADROOM,
                50,
            )),
            adaptive: AdaptiveSettings::default(),
        }
    }

    /// The Kingdee preset: Kingdee documents no rate or concurrency threshold (kingdee.md §5),
    /// only MsgCode 14 "call limit", so the preset caps concurrency at 4 per data centre and sets
    /// no rate; a throttled answer (MsgCode 14) pauses the group for its hint or
    /// `adaptive.pause_seconds`.
    pub fn kingdee() -> Self {
        Self {
            concurrency: 4,
            default_rule: None,
            groups: BTreeMap::new(),
            total: None,
            adaptive: AdaptiveSettings::default(),
        }
    }

    /// The rule a group uses: its own, else that of the part before `:`, else the default.
    pub fn rule_for(&self, group: &str) -> Option<LimitRule> {
        if let Some(rule) = self.groups.get(group) {
            return Some(*rule);
        }
        if let Some((base, _)) = group.split_once(':')
            && let Some(rule) = self.groups.get(base)
        {
            return Some(*rule);
        }
        self.default_rule
    }

    /// Checks every value; the error names the offending key relative to the limits table
    /// (e.g. `groups.robot.per_second`).
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.concurrency == 0 {
            return Err(LimitsError::new(
                "concurrency".into(),
                0.0,
                Requirement::AtLeastOne,
            ));
        }
        if let Some(rule) = &self.default_rule {
            rule.check("default_rule")?;
        }
        if let Some(rule) = &self.total {
            rule.check("total")?;
        }
        for (name, rule) in &self.groups {
            rule.check(&format!("groups.{name}"))?;
        }
        self.adaptive.check()
    }
}

/// What a limits value must satisfy; written in notation that needs no translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// `> 0`
    Positive,
    /// `≥ 1`
    AtLeastOne,
    /// `≥ 0`
    NonNegative,
    /// `0 < x < 1`
    OpenUnit,
    /// `0 < x ≤ 1`
    HalfOpenUnit,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Positive => "> 0",
            Self::AtLeastOne => ">= 1",
            Self::NonNegative => ">= 0",
            Self::OpenUnit => "0 < x < 1",
            Self::HalfOpenUnit => "0 < x <= 1",
        })
    }
}

/// An invalid limits value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("limits value `{path}` = {value} is out of range: it must be {requirement}")]
pub struct LimitsError {
    /// Dotted key path relative to the limits table, e.g. `adaptive.decrease_factor`.
    pub path: String,
    pub value: f64,
    pub requirement: Requirement,
}

impl LimitsError {
    fn new(path: String, value: f64, requirement: Requirement) -> Self {
        Self {
            path,
            value,
            requirement,
        }
    }
}
