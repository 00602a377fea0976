//! Call limits (protocol §7): per app × API QPS in 1-second windows, per source IP
//! 10 000 requests / 20 s then a 5-minute ban, and the monthly quota of the non-exempt APIs.
//! Windows are fixed (aligned to the start of the sandbox's monotonic clock), so a caller
//! pacing itself to N calls per second is never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn window_index(now: Instant, len: Duration) -> u128 {
    now.saturating_duration_since(epoch()).as_millis() / len.as_millis().max(1)
}

#[derive(Debug, Default)]
pub struct Limits {
    /// (app, api) → (window, calls in it).
    qps: HashMap<(String, String), (u128, u32)>,
    /// ip → (window, requests in it).
    ip: HashMap<IpAddr, (u128, u32)>,
    /// ip → ban end.
    pub bans: HashMap<IpAddr, Instant>,
    /// Calls counted against the monthly quota.
    pub quota_used: u64,
}

/// What the IP check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVerdict {
    Ok,
    /// Banned: seconds left.
    Banned(u64),
    /// Banned right now by this request.
    NewBan(u64),
}

impl Limits {
    /// Counts one call of `app` on `api`; `false` when the window already holds `qps` calls.
    pub fn take_qps(&mut self, app: &str, api: &str, qps: u32) -> bool {
        let w = window_index(Instant::now(), Duration::from_secs(1));
        let e = self
            .qps
            .entry((app.to_owned(), api.to_owned()))
            .or_insert((w, 0));
        if e.0 != w {
            *e = (w, 0);
        }
        if e.1 >= qps {
            return false;
        }
        e.1 += 1;
        true
    }

    pub fn check_ip(
        &mut self,
        ip: IpAddr,
        limit: u32,
        window: Duration,
        ban: Duration,
    ) -> IpVerdict {
        let now = Instant::now();
        if let Some(until) = self.bans.get(&ip).copied() {
            if until > now {
                return IpVerdict::Banned(until.duration_since(now).as_secs().max(1));
            }
            self.bans.remove(&ip);
        }
        let w = window_index(now, window);
        let e = self.ip.entry(ip).or_insert((w, 0));
        if e.0 != w {
            *e = (w, 0);
        }
        e.1 += 1;
        if e.1 > limit {
            self.bans.insert(ip, now + ban);
            self.ip.remove(&ip);
            return IpVerdict::NewBan(ban.as_secs());
        }
        IpVerdict::Ok
    }

    /// Bans `ip` now for `ban` (admin).
    pub fn ban(&mut self, ip: IpAddr, ban: Duration) {
        self.bans.insert(ip, Instant::now() + ban);
    }

    pub fn unban_all(&mut self) -> usize {
        let n = self.bans.len();
        self.bans.clear();
        self.ip.clear();
        n
    }

    pub fn active_bans(&self) -> Vec<(IpAddr, u64)> {
        let now = Instant::now();
        self.bans
            .iter()
            .filter(|(_, u)| **u > now)
            .map(|(ip, u)| (*ip, u.duration_since(now).as_secs()))
            .collect()
    }
}

/// APIs exempt from the monthly quota (§7: token, SSO and contacts APIs).
pub fn quota_exempt(api: &str) -> bool {
    api == "/gettoken"
        || api.starts_with("/v1.0/oauth2/")
        || api.starts_with("/topapi/v2/department/")
        || api.starts_with("/topapi/v2/user/")
        || api.starts_with("/topapi/user/")
        || api.starts_with("/v1.0/contact/")
        || api.starts_with("/call_back/")
}
