//! Reading the DingTalk organisation: every department (breadth first, `listsub` per
//! department, so parents always come before children), every user of every department
//! (cursor paging to the end), and the member counts to check the listing against. Nothing is
//! assumed: a call that still fails after its retries leaves a *gap*, and a snapshot with a gap
//! is incomplete, so no delete or disable is ever decided from it (the landscape's complaint:
//! syncs that stop at 100 users or one level and still report success).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use dingtalk::contacts::{Department, MAX_PAGE_SIZE, User};
use dingtalk::{DeptId, DingTalkClient, UserId};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::progress::Progress;

/// Attempts per DingTalk call within a walk before the call becomes a gap.
const CALL_ATTEMPTS: u32 = 4;

/// One department found by the walk.
#[derive(Debug, Clone, PartialEq)]
pub struct DeptNode {
    pub id: i64,
    /// `None` for the root, and for the root's children when the root is not synced.
    pub parent: Option<i64>,
    pub name: String,
    /// 1 = a child of the root.
    pub depth: usize,
    /// The names from the top, joined with `/` (e.g. `研发中心/平台研发部`).
    pub path: String,
}

impl DeptNode {
    /// The record the department mapping reads.
    pub fn source_record(&self) -> Map<String, Value> {
        let v = json!({
            "dept_id": self.id,
            "name": self.name,
            "parent_id": self.parent,
            "depth": self.depth,
            "path": self.path,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// The record the user mapping reads: DingTalk's user object, plus `main_dept_id` (the first
/// department) and `extension` parsed when it is a JSON string.
pub fn user_record(user: &User) -> Map<String, Value> {
    let mut m = match serde_json::to_value(user) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.insert(
        "main_dept_id".into(),
        user.dept_id_list
            .first()
            .map_or(Value::Null, |d| Value::from(*d)),
    );
    if let Some(ext) = &user.extension
        && let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(ext)
    {
        m.insert("extension".into(), parsed);
    }
    m
}

/// Why a snapshot is not complete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// `department:<id>` or `users:<dept id>` or `count:<dept id>`.
    pub scope: String,
    pub reason: String,
}

/// Call `f` until it succeeds, a permanent error, or [`CALL_ATTEMPTS`]; waits the platform's
/// hint when throttled, else 0.5 s, 1 s, 2 s.
pub async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, dingtalk::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, dingtalk::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < CALL_ATTEMPTS => {
                let wait = e
                    .retry_after()
                    .unwrap_or(Duration::from_millis(500 << (attempt - 1)))
                    .min(Duration::from_secs(30));
                tracing::debug!(error = %e, attempt, "DingTalk call failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every department below `root`, breadth first (parents before children, siblings in
/// DingTalk's order), with `concurrency` `listsub` calls in flight.
pub async fn walk_departments(
    client: &DingTalkClient,
    root: i64,
    include_root: bool,
    concurrency: usize,
    progress: &Progress,
) -> (Vec<DeptNode>, Vec<Gap>) {
    let mut out = Vec::new();
    let mut gaps = Vec::new();
    let mut seen = HashSet::from([root]);
    if include_root {
        match with_retries(|| client.department_get(DeptId(root))).await {
            Ok(d) => out.push(DeptNode {
                id: root,
                parent: None,
                name: d.name,
                depth: 0,
                path: String::new(),
            }),
            Err(e) => gaps.push(Gap {
                scope: format!("department:{root}"),
                reason: e.to_string(),
            }),
        }
        progress.page();
    }
    // (id, path) of the level being expanded.
    let mut level: Vec<(i64, String)> = vec![(root, String::new())];
    let mut depth = 0;
    while !level.is_empty() {
        depth += 1;
        let children: Vec<(i64, String, Result<Vec<Department>, dingtalk::Error>)> =
            futures::stream::iter(level.into_iter().map(|(id, path)| async move {
                let r = with_retries(|| client.department_list_sub(DeptId(id))).await;
                (id, path, r)
            }))
            .buffered(concurrency.max(1))
            .collect()
            .await;
        let mut next = Vec::new();
        for (parent, parent_path, result) in children {
            progress.page();
            match result {
                Ok(list) => {
                    for d in list {
                        if !seen.insert(d.dept_id.0) {
                            continue;
                        }
                        let path = if parent_path.is_empty() {
                            d.name.clone()
                        } else {
                            format!("{parent_path}/{}", d.name)
                        };
                        out.push(DeptNode {
                            id: d.dept_id.0,
                            parent: if parent == root && !include_root {
                                None
                            } else {
                                Some(parent)
                            },
                            name: d.name,
                            depth,
                            path: path.clone(),
                        });
                        progress.department();
                        next.push((d.dept_id.0, path));
                    }
                }
                Err(e) => gaps.push(Gap {
                    scope: format!("department:{parent}"),
                    reason: format!("sub-departments not read: {e}"),
                }),
            }
        }
        level = next;
    }
    (out, gaps)
}

/// One department's members as the walk found them.
#[derive(Debug)]
pub struct DeptMembers {
    pub dept: i64,
    /// Every direct member listed (a person in several departments appears in each).
    pub users: Vec<User>,
    /// Set when the listing stopped early: the department's members are not all known.
    pub gap: Option<Gap>,
}

/// Start listing the members of `depts` (in order, `concurrency` departments at a time); the
/// receiver yields one [`DeptMembers`] per department, in the order given. The channel is
/// bounded, so a slow writer slows the reads instead of filling memory.
pub fn stream_members(
    client: DingTalkClient,
    depts: Vec<i64>,
    concurrency: usize,
    progress: Progress,
) -> mpsc::Receiver<DeptMembers> {
    let (tx, rx) = mpsc::channel(concurrency.max(1) * 2);
    tokio::spawn(async move {
        let client = &client;
        let progress = &progress;
        let mut results = futures::stream::iter(
            depts
                .into_iter()
                .map(|dept| async move { list_members(client, dept, progress).await }),
        )
        .buffered(concurrency.max(1));
        while let Some(m) = results.next().await {
            if tx.send(m).await.is_err() {
                return; // the run stopped listening
            }
        }
    });
    rx
}

async fn list_members(client: &DingTalkClient, dept: i64, progress: &Progress) -> DeptMembers {
    let mut users = Vec::new();
    let mut cursor = 0i64;
    loop {
        let page = match with_retries(|| client.user_list_page(DeptId(dept), cursor, MAX_PAGE_SIZE))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return DeptMembers {
                    dept,
                    users,
                    gap: Some(Gap {
                        scope: format!("users:{dept}"),
                        reason: format!("user/list at cursor {cursor}: {e}"),
                    }),
                };
            }
        };
        progress.page();
        users.extend(page.list);
        if !page.has_more {
            return DeptMembers {
                dept,
                users,
                gap: None,
            };
        }
        match page.next_cursor {
            Some(next) if next > cursor => cursor = next,
            other => {
                return DeptMembers {
                    dept,
                    users,
                    gap: Some(Gap {
                        scope: format!("users:{dept}"),
                        reason: format!("has_more with next_cursor {other:?} after {cursor}"),
                    }),
                };
            }
        }
    }
}

/// DingTalk's `member_count` per department, and the departments whose count was not read.
pub type MemberCounts = (HashMap<i64, i64>, Vec<Gap>);

/// `member_count` of every department (`department/get`, its own API quota, so this runs
/// alongside the member listing). A department whose count could not be read is a gap.
pub async fn member_counts(
    client: DingTalkClient,
    depts: Vec<i64>,
    concurrency: usize,
) -> MemberCounts {
    let client = &client;
    let results: Vec<(i64, Result<Option<i64>, dingtalk::Error>)> =
        futures::stream::iter(depts.into_iter().map(|d| async move {
            let r = with_retries(|| client.department_get(DeptId(d)))
                .await
                .map(|detail| detail.member_count);
            (d, r)
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut counts = HashMap::new();
    let mut gaps = Vec::new();
    for (d, r) in results {
        match r {
            Ok(Some(c)) => {
                counts.insert(d, c);
            }
            Ok(None) => {} // not reported: nothing to check against
            Err(e) => gaps.push(Gap {
                scope: format!("count:{d}"),
                reason: format!("member_count not read: {e}"),
            }),
        }
    }
    (counts, gaps)
}

/// The current state of one user, for an incremental update: `None` when DingTalk no longer
/// knows the user (left the organisation).
pub async fn fetch_user(
    client: &DingTalkClient,
    userid: &str,
) -> Result<Option<User>, dingtalk::Error> {
    let id = UserId::new(userid);
    match with_retries(|| client.user_get(&id)).await {
        Ok(u) => Ok(Some(u)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The current state of one department, with its parent chain resolved into a [`DeptNode`]
/// (depth and path need the ancestors' names: one `department/get` per level).
pub async fn fetch_department(
    client: &DingTalkClient,
    dept: i64,
    root: i64,
    include_root: bool,
) -> Result<Option<DeptNode>, dingtalk::Error> {
    let detail = match with_retries(|| client.department_get(DeptId(dept))).await {
        Ok(d) => d,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = vec![detail.name.clone()];
    let mut up = detail.parent_id.map(|p| p.0);
    let mut guard = 0;
    while let Some(p) = up {
        guard += 1;
        if p == root || guard > 64 {
            break;
        }
        let d = with_retries(|| client.department_get(DeptId(p))).await?;
        names.push(d.name);
        up = d.parent_id.map(|x| x.0);
    }
    names.reverse();
    let parent = detail.parent_id.map(|p| p.0);
    Ok(Some(DeptNode {
        id: dept,
        parent: match parent {
            Some(p) if p == root && !include_root => None,
            other => other,
        },
        name: detail.name,
        depth: names.len(),
        path: names.join("/"),
    }))
}

/// `user/get` 33012 (no such userid), 60121 (user not found), `department/get` 60003
/// (protocol §2 table).
pub fn is_not_found(e: &dingtalk::Error) -> bool {
    matches!(e, dingtalk::Error::Business { code, .. } if code == "33012" || code == "60121" || code == "60003")
}
