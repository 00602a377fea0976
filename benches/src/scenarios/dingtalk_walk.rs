//! `dingtalk-walk`: enumerate a generated organisation from the DingTalk sandbox the way the
//! hub's full sync does, at the standard edition's QPS, through the production limiter.
//!
//! 1. A sandbox (`sandbox::dingtalk`, standard edition: 20 calls/s per app × API) is served
//!    in-process on loopback with `Seed::generate(users, depts)`.
//! 2. One `DingTalkClient` paced by `ConnectionLimiter` with
//!    `ConnectionLimits::dingtalk(DingTalkEdition::Standard)` (v1.0 token endpoint).
//! 3. Phase `tree`: `department_tree(1)` — `listsub` per department, breadth-first.
//! 4. Phase `users`: `users_by_department` for the root and every department found
//!    (`user/list`, cursor paging, 100 per page), `--concurrency` departments at a time.
//! 5. The departments and the distinct userids found must equal the seed, or the run fails.
//!
//! The sandbox limits each API path separately, so quota utilisation is reported per path
//! (calls on that path ÷ the phase's wall time ÷ the edition's QPS); the walk uses one path
//! per phase. The 90018 count is read from the sandbox's counters and should be 0.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use dingtalk::{Credentials, DeptId, DingTalkClient, DingTalkConfig, TokenEndpoint};
use futures::{StreamExt, TryStreamExt};
use limits::{ConnectionLimiter, ConnectionLimits, DingTalkEdition, PRESET_HEADROOM};
use sandbox::dingtalk::{
    DEFAULT_AGENT_ID, DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DingTalkSandbox, DingTalkSandboxConfig,
    Edition, serve,
};
use sandbox::seed::Seed;
use serde::Serialize;
use serde_json::json;

use crate::report::{Machine, Outcome, per_second, round, timestamp};

const LISTSUB: &str = "/topapi/v2/department/listsub";
const USER_LIST: &str = "/topapi/v2/user/list";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// People in the generated organisation (the sandbox caps it at 100,000).
    #[arg(long, default_value_t = 100_000, value_parser = at_least_one)]
    users: usize,
    /// Departments below the root in the generated organisation.
    #[arg(long, default_value_t = 5_000, value_parser = at_least_one)]
    depts: usize,
    /// Departments whose members are paged at the same time (the limiter still paces them).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    concurrency: usize,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a count of at least 1")),
    }
}

#[derive(Debug, Serialize)]
struct Params {
    users: usize,
    depts: usize,
    concurrency: usize,
    edition: &'static str,
    /// The sandbox's limit per app × API path.
    sandbox_qps_per_api: u32,
    /// The limiter's rate per API group (`PRESET_HEADROOM` × the edition's QPS).
    limiter_rate_per_group: f64,
    pacer: &'static str,
    token_endpoint: &'static str,
    page_size: u32,
    transport: &'static str,
    sandbox: &'static str,
}

#[derive(Debug, Serialize)]
struct Phase {
    api: &'static str,
    calls: u64,
    elapsed_s: f64,
    calls_per_s: f64,
    /// calls_per_s ÷ the sandbox's allowed calls/s for this API.
    quota_utilisation: f64,
}

#[derive(Debug, Serialize)]
struct Result_ {
    elapsed_s: f64,
    departments_found: usize,
    users_found: usize,
    users_per_s: f64,
    api_calls: u64,
    calls_per_s: f64,
    /// api_calls/s ÷ the allowed calls/s of the one API path in use at a time.
    quota_utilisation: f64,
    tree: Phase,
    users: Phase,
    token_fetches: u64,
    qps_rejections: u64,
    answers_90018: u64,
    other_errors: serde_json::Value,
    /// The seed's counts; the run fails unless found = expected.
    expected_departments: usize,
    expected_users: usize,
}

fn definitions() -> serde_json::Value {
    json!({
        "elapsed_s": "wall time of both phases (token fetch included), one client, sandbox in-process on loopback",
        "users_per_s": "distinct users found ÷ elapsed_s",
        "api_calls": "calls the sandbox counted on listsub + user/list (token calls excluded)",
        "calls_per_s": "api_calls ÷ elapsed_s",
        "quota_utilisation": "calls/s ÷ allowed calls/s. The sandbox limits each app × API path to the edition's QPS (standard 20/s) and the walk uses one path at a time (tree: listsub, users: user/list), so the allowed rate is 20/s; the limiter's ceiling is PRESET_HEADROOM = 0.97",
        "tree": "phase 1: department_tree(1), listsub per department",
        "users": "phase 2: users_by_department for the root and every department, user/list pages of 100",
        "answers_90018": "90018 answers counted by the sandbox (errors[\"90018\"]); qps_rejections counts every QPS refusal",
        "estimate_100k_s": "predicted wall time of the default 100,000 users / 5,000 departments: (depts + 1) listsub + (depts + 1) × ceil(users per dept / 100) user/list calls at the limiter's rate"
    })
}

struct Served {
    sandbox: DingTalkSandbox,
    origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_sandbox(seed: &Seed) -> anyhow::Result<Served> {
    let cfg = DingTalkSandboxConfig::default();
    ensure!(
        cfg.apps.iter().all(|a| a.edition == Edition::Standard),
        "the default sandbox app is not standard edition"
    );
    let sandbox = DingTalkSandbox::new(cfg, seed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let served = sandbox.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, served).await {
            eprintln!("sandbox stopped: {e}");
        }
    });
    Ok(Served {
        sandbox,
        origin: format!("http://{addr}"),
        task,
    })
}

fn client_for(served: &Served) -> anyhow::Result<DingTalkClient> {
    let cfg = DingTalkConfig::new(
        served.sandbox.corp_id(),
        Credentials::new(DEFAULT_APP_KEY, DEFAULT_APP_SECRET),
    )
    .with_agent_id(i64::try_from(DEFAULT_AGENT_ID)?)
    .with_bases(&served.origin, &served.origin)?
    .with_token_endpoint(TokenEndpoint::V1);
    let limiter = ConnectionLimiter::new(
        "dingtalk-walk",
        ConnectionLimits::dingtalk(DingTalkEdition::Standard),
    )?;
    Ok(DingTalkClient::builder(cfg)
        .pacer(Arc::new(limiter))
        .build()?)
}

fn counter_calls(sb: &DingTalkSandbox, api: &str) -> u64 {
    sb.counters().calls.get(api).copied().unwrap_or(0)
}

fn phase(api: &'static str, calls: u64, secs: f64, qps: u32) -> Phase {
    let cps = if secs > 0.0 { calls as f64 / secs } else { 0.0 };
    Phase {
        api,
        calls,
        elapsed_s: round(secs, 3),
        calls_per_s: round(cps, 2),
        quota_utilisation: round(cps / f64::from(qps), 4),
    }
}

/// Predicted seconds for a generated org of `users` / `depts` at `rate` calls/s.
fn estimate_s(users: usize, depts: usize, rate: f64) -> f64 {
    let per_dept = users.div_ceil(depts);
    let pages = per_dept.div_ceil(100).max(1);
    let calls = (depts + 1) + depts * pages + 1;
    round(calls as f64 / rate, 0)
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let qps = DingTalkEdition::Standard.api_qps();
    let rate = f64::from(qps) * PRESET_HEADROOM;
    eprintln!(
        "dingtalk-walk: generating {} users / {} departments …",
        args.users, args.depts
    );
    let seed = Seed::generate(args.users, args.depts);
    let expected_departments = seed.departments.len() - 1;
    let expected: HashSet<&str> = seed
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.userid.as_str())
        .collect();
    eprintln!(
        "dingtalk-walk: about {:.0} s at {rate:.1} calls/s",
        estimate_s(expected.len(), expected_departments, rate)
    );
    let served = start_sandbox(&seed).await?;
    let client = client_for(&served)?;
    let sb = served.sandbox.clone();

    let started = Instant::now();
    client.access_token().await.context("fetching the token")?;

    // Phase 1: the department tree.
    let t = Instant::now();
    let tree = client
        .department_tree(DeptId::ROOT)
        .await
        .context("walking the department tree")?;
    let tree_s = t.elapsed().as_secs_f64();
    eprintln!(
        "dingtalk-walk: {} departments in {tree_s:.1} s; paging users …",
        tree.len()
    );

    // Phase 2: every department's members.
    let t = Instant::now();
    let depts: Vec<DeptId> = std::iter::once(DeptId::ROOT)
        .chain(tree.iter().map(|d| d.dept_id))
        .collect();
    let progress_every = (depts.len() / 10).max(1);
    let mut found: HashSet<String> = HashSet::with_capacity(expected.len());
    let mut done = 0usize;
    let mut pages = futures::stream::iter(depts.iter().copied())
        .map(|d| {
            let c = client.clone();
            async move {
                c.users_by_department(d)
                    .await
                    .with_context(|| format!("users of department {d}"))
            }
        })
        .buffer_unordered(args.concurrency);
    while let Some(users) = pages.try_next().await? {
        found.extend(users.into_iter().map(|u| u.userid.0));
        done += 1;
        if done.is_multiple_of(progress_every) {
            eprintln!(
                "dingtalk-walk: {done}/{} departments, {} users, {:.0} s",
                depts.len(),
                found.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(pages);
    let users_s = t.elapsed().as_secs_f64();
    let elapsed = started.elapsed().as_secs_f64();

    ensure!(
        tree.len() == expected_departments,
        "the tree walk found {} departments, the seed has {expected_departments}",
        tree.len()
    );
    ensure!(
        found.len() == expected.len() && found.iter().all(|u| expected.contains(u.as_str())),
        "the walk found {} distinct users, the seed has {}",
        found.len(),
        expected.len()
    );

    let counters = sb.counters();
    let tree_calls = counter_calls(&sb, LISTSUB);
    let user_calls = counter_calls(&sb, USER_LIST);
    let api_calls = tree_calls + user_calls;
    let answers_90018 = counters.errors.get("90018").copied().unwrap_or(0);
    let mut other_errors = counters.errors.clone();
    other_errors.remove("90018");
    let cps = if elapsed > 0.0 {
        api_calls as f64 / elapsed
    } else {
        0.0
    };
    let result = Result_ {
        elapsed_s: round(elapsed, 3),
        departments_found: tree.len(),
        users_found: found.len(),
        users_per_s: per_second(found.len(), elapsed),
        api_calls,
        calls_per_s: round(cps, 2),
        quota_utilisation: round(cps / f64::from(qps), 4),
        tree: phase(LISTSUB, tree_calls, tree_s, qps),
        users: phase(USER_LIST, user_calls, users_s, qps),
        token_fetches: client.tokens().fetch_count(),
        qps_rejections: counters.qps_rejections,
        answers_90018,
        other_errors: serde_json::to_value(&other_errors)?,
        expected_departments,
        expected_users: expected.len(),
    };
    let params = Params {
        users: args.users,
        depts: args.depts,
        concurrency: args.concurrency,
        edition: DingTalkEdition::Standard.as_str(),
        sandbox_qps_per_api: qps,
        limiter_rate_per_group: round(rate, 3),
        pacer: "ConnectionLimiter(ConnectionLimits::dingtalk(Standard))",
        token_endpoint: "/v1.0/oauth2/accessToken",
        page_size: 100,
        transport: "HTTP/1.1 on loopback (reqwest → axum)",
        sandbox: "sandbox::dingtalk in-process, Seed::generate(users, depts), standard edition",
    };
    let estimate = estimate_s(100_000, 5_000, rate);
    let summary = summary(&result, estimate);
    let report = json!({
        "scenario": "dingtalk-walk",
        "timestamp": timestamp(),
        "machine": Machine::detect(),
        "params": params,
        "definitions": definitions(),
        "result": result,
        "estimate_100k_s": estimate,
    });
    Ok(Outcome {
        scenario: "dingtalk-walk",
        report,
        summary,
    })
}

fn summary(r: &Result_, estimate_100k_s: f64) -> String {
    format!(
        "dingtalk-walk: {} users in {} departments in {:.1} s — {:.1} users/s\n  \
         {} API calls, {:.2} calls/s, quota utilisation {:.1} % (tree {:.1} %, users {:.1} %), \
         90018 answers: {}\n  estimate for 100,000 users / 5,000 departments: {:.0} s (~{:.1} min)\n",
        r.users_found,
        r.departments_found,
        r.elapsed_s,
        r.users_per_s,
        r.api_calls,
        r.calls_per_s,
        r.quota_utilisation * 100.0,
        r.tree.quota_utilisation * 100.0,
        r.users.quota_utilisation * 100.0,
        r.answers_90018,
        estimate_100k_s,
        estimate_100k_s / 60.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_listsub_and_pages() {
        // 5001 listsub + 5000 user/list (20 per department) + the root's page, at 19.4/s.
        assert_eq!(estimate_s(100_000, 5_000, 19.4), 516.0);
        // 150 per department: two pages each.
        assert_eq!(estimate_s(1_200, 8, 1.0), 9.0 + 16.0 + 1.0);
    }
}
