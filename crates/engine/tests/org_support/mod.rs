//! A simulated company for org-sync tests: the DingTalk and Kingdee simulators in-process
//! (Kingdee empty, so the sync has to build it), the configuration of `examples/dingbridge.toml`
//! pointed at them, and helpers to carry the simulator's contact events into the inbox and to
//! run the queue until it is idle. The simulators never share code with the clients.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::config::Config;
use engine::jobs::HandlerRegistry;
use engine::orgsync::{OrgSync, build_syncs};
use engine::retry::RetryPolicy;
use engine::worker::{RetryPolicies, WorkerPool, WorkerSettings};
use sandbox::admin_client::AdminClient;
use sandbox::dingtalk::{DingTalkSandbox, DingTalkSandboxConfig, Edition};
use sandbox::kingdee::{KingdeeSandbox, KingdeeSandboxConfig};
use sandbox::seed::Seed;
use serde_json::Value;
use store::{JobStatus, Store};
use tokio_util::sync::CancellationToken;

pub const EXAMPLE: &str = include_str!("../../../../examples/dingbridge.toml");
pub const FLOW: &str = "org_to_kingdee";

pub struct World {
    pub dt: DingTalkSandbox,
    pub dt_url: String,
    pub kd: KingdeeSandbox,
    pub kd_url: String,
    /// Events already carried into the inbox (by index in the simulator's log).
    delivered: std::sync::Mutex<usize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl World {
    /// The company `seed` in DingTalk (exclusive edition: 60 QPS per API, to keep tests
    /// short), and an empty Kingdee.
    pub async fn start(seed: &Seed) -> World {
        let mut dt_cfg = DingTalkSandboxConfig::default();
        for app in &mut dt_cfg.apps {
            app.edition = Edition::Exclusive;
        }
        let dt = DingTalkSandbox::new(dt_cfg, seed);
        let kd = KingdeeSandbox::new(
            KingdeeSandboxConfig {
                seed_org: false,
                ..KingdeeSandboxConfig::default()
            },
            seed,
        );
        let dl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dt_url = format!("http://{}", dl.local_addr().unwrap());
        let kd_url = format!("http://{}", kl.local_addr().unwrap());
        let (d, k) = (dt.clone(), kd.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = sandbox::dingtalk::serve(dl, d).await;
            }),
            tokio::spawn(async move {
                let _ = sandbox::kingdee::serve(kl, k).await;
            }),
        ];
        World {
            dt,
            dt_url,
            kd,
            kd_url,
            delivered: std::sync::Mutex::new(0),
            tasks,
        }
    }

    /// The example configuration pointed at these simulators, with `edit` applied to its text.
    pub fn config(&self, edit: impl Fn(String) -> String) -> Config {
        let text = EXAMPLE
            .replace("http://127.0.0.1:8089", &self.dt_url)
            .replace("http://127.0.0.1:8090", &self.kd_url)
            .replace("edition = \"standard\"", "edition = \"exclusive\"");
        Config::from_str(&edit(text), "dingbridge.toml").unwrap()
    }

    pub fn dingtalk(&self, cfg: &Config) -> dingtalk::DingTalkClient {
        let engine::config::ConnectionSettings::DingTalk(c) = &cfg.connections["dingtalk"].settings
        else {
            panic!("no dingtalk connection")
        };
        engine::connectors::dingtalk_client("dingtalk", c, Arc::new(limits::Unpaced)).unwrap()
    }

    pub fn kingdee(&self, cfg: &Config) -> kingdee::KingdeeClient {
        let engine::config::ConnectionSettings::Kingdee(c) = &cfg.connections["kingdee"].settings
        else {
            panic!("no kingdee connection")
        };
        engine::connectors::kingdee_client("kingdee", c, Arc::new(limits::Unpaced)).unwrap()
    }

    /// The simulator's event log (every contact change it made).
    pub async fn events(&self) -> Vec<Value> {
        let admin = AdminClient::new(&self.dt_url, "dingtalk");
        let v = admin.get("events").await.unwrap();
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// Carry the events emitted since the last call into the inbox (as the HTTP callback or
    /// the Stream consumer would). Returns how many were new to the inbox.
    pub async fn deliver_events(&self, store: &dyn Store) -> usize {
        let events = self.events().await;
        let start = *self.delivered.lock().unwrap();
        let mut new = 0;
        for e in events.iter().skip(start) {
            if store_event(store, e).await {
                new += 1;
            }
        }
        *self.delivered.lock().unwrap() = events.len();
        new
    }

    /// Deliver every event again (DingTalk re-pushing): nothing should be new.
    pub async fn redeliver_all(&self, store: &dyn Store) -> usize {
        let mut new = 0;
        for e in &self.events().await {
            if store_event(store, e).await {
                new += 1;
            }
        }
        new
    }

    /// Kingdee rows of a form: number → (forbid status, fields by key asked).
    pub async fn kingdee_rows(
        &self,
        cfg: &Config,
        form: &str,
        keys: &[&str],
    ) -> HashMap<String, Vec<Value>> {
        use futures::TryStreamExt;
        let client = self.kingdee(cfg);
        let rows: Vec<Vec<Value>> = client
            .query_rows(kingdee::QueryRequest::new(form, keys.iter().copied()))
            .try_collect()
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| (r[0].as_str().unwrap_or_default().to_owned(), r))
            .collect()
    }
}

async fn store_event(store: &dyn Store, e: &Value) -> bool {
    engine::jobs::inbox::store_event(
        store,
        "dingtalk",
        e["event_id"].as_str().unwrap(),
        e["event_type"].as_str().unwrap(),
        e["payload"].clone(),
        store::now_ms(),
    )
    .await
    .unwrap()
}

pub async fn syncs(cfg: &Config, store: &Arc<dyn Store>) -> HashMap<String, Arc<OrgSync>> {
    let limiters = cfg.limiter_registry().unwrap();
    build_syncs(cfg, Arc::clone(store), &limiters)
        .await
        .unwrap()
}

pub async fn handlers(cfg: &Config, store: &Arc<dyn Store>) -> HandlerRegistry {
    let limiters = cfg.limiter_registry().unwrap();
    HandlerRegistry::for_config(cfg, Arc::clone(store), &limiters)
        .await
        .unwrap()
}

/// Run workers until no job is queued, running or waiting to retry.
pub async fn drain(store: &Arc<dyn Store>, handlers: HandlerRegistry) {
    let shutdown = CancellationToken::new();
    let retries = RetryPolicies {
        default: RetryPolicy {
            schedule: vec![Duration::from_millis(100); 4],
            jitter: 0.0,
        },
        ..RetryPolicies::default()
    };
    let settings = WorkerSettings {
        count: 4,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..WorkerSettings::default()
    };
    let pool = WorkerPool::new(Arc::clone(store), handlers, retries, settings);
    let running = tokio::spawn(pool.run(shutdown.clone()));
    for _ in 0..3000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let busy = store_testkit::unfinished_jobs(store.as_ref()).await;
        if busy == 0 {
            break;
        }
    }
    shutdown.cancel();
    running.await.unwrap();
}

// ---- Org sync into an eHR (HTTP) or an in-house table (SQL): the flow, the changes made
// ---- through the DingTalk API, and the organisation the target must end up holding.

/// The example's Kingdee flow switched off, so that only the flow a test appends reacts to the
/// contact events it delivers.
pub fn without_kingdee_flow(text: String) -> String {
    let header = format!("[flows.{FLOW}]\n");
    assert!(text.contains(&header), "the example has no [flows.{FLOW}]");
    text.replace(&header, &format!("{header}enabled = false\n"))
}

/// An `org_sync` flow from the `dingtalk` connection into `target`, with the mapping both the
/// eHR and the SQL tests use (field names are the eHR's JSON fields and the tables' columns).
/// `departments` and `users` are the target's own settings (TOML key lines) for each entity.
pub fn org_flow_toml(flow: &str, target: &str, departments: &str, users: &str) -> String {
    format!(
        r#"
[flows.{flow}]
recipe = "org_sync"
queue = "default"

[flows.{flow}.options]
source = "dingtalk"
target = "{target}"
leavers = "disable"
match_by = "job_number"
batch_size = 100

[flows.{flow}.options.departments]
key = "code"
{departments}

[[flows.{flow}.options.departments.fields]]
to = "code"
from = "dept_id"
template = "D{{value}}"

[[flows.{flow}.options.departments.fields]]
to = "name"
from = "name"
required = true

[[flows.{flow}.options.departments.fields]]
to = "parent_code"
from = "parent_id"
template = "D{{value}}"

[[flows.{flow}.options.departments.fields]]
to = "full_path"
from = "path"

[[flows.{flow}.options.departments.fields]]
to = "tree_level"
from = "depth"

[flows.{flow}.options.users]
key = "employee_no"
{users}

[[flows.{flow}.options.users.fields]]
to = "employee_no"
from = "job_number"
required = true

[[flows.{flow}.options.users.fields]]
to = "dingtalk_userid"
from = "userid"

[[flows.{flow}.options.users.fields]]
to = "name"
from = "name"
required = true

[[flows.{flow}.options.users.fields]]
to = "mobile"
from = "mobile"
regex = '^1[3-9]\d{{9}}$'

[[flows.{flow}.options.users.fields]]
to = "email"
from = "email"

[[flows.{flow}.options.users.fields]]
to = "dept_code"
from = "main_dept_id"
expr = 'if value == () || value == 1 {{ () }} else {{ "D" + value }}'

[[flows.{flow}.options.users.fields]]
to = "title"
from = "title"
default = "员工"

[[flows.{flow}.options.users.fields]]
to = "hired_on"
from = "hired_date"
date = {{ from = "epoch_ms", to = "%Y-%m-%d" }}
"#
    )
}

/// The configuration text with an e-mail check added to the user mapping of
/// [`org_flow_toml`]: an address without exactly one `@` fails the record.
pub fn strict_email(text: String) -> String {
    let rule = "to = \"email\"\nfrom = \"email\"\n";
    assert!(text.contains(rule), "no e-mail rule to make strict");
    text.replace(rule, &format!("{rule}regex = '^[^@\\s]+@[^@\\s]+$'\n"))
}

/// A seed person whose e-mail the check of [`strict_email`] refuses; returns them.
pub fn break_one_email(seed: &mut Seed) -> sandbox::seed::User {
    let bad = seed.users.iter().position(|u| u.active).unwrap();
    seed.users[bad].email = Some("欧阳娜#example-hz.com".into());
    seed.users[bad].clone()
}

/// The changes [`World::make_contact_changes`] made through the DingTalk API.
#[derive(Debug, Clone)]
pub struct ContactChanges {
    /// The person created (in a department of the deepest level).
    pub new_user: ExpectedUser,
    /// The person renamed and given a new title: (userid, new name, new title).
    pub modified: (String, String, String),
    /// The person who left (deleted from DingTalk).
    pub leaver: String,
    /// The department renamed (a child of the root) and its new name.
    pub renamed: (u64, String),
    /// The department moved (third level) and its new parent (`renamed`).
    pub moved: (u64, u64),
}

impl World {
    /// Through the DingTalk API: one person added, one renamed (and re-titled), one deleted;
    /// one department renamed, another moved under it. Five contact events follow.
    pub async fn make_contact_changes(&self, cfg: &Config, seed: &Seed) -> ContactChanges {
        use dingtalk::contacts::{DepartmentInput, UserInput};
        use dingtalk::{DeptId, UserId};
        let dt = self.dingtalk(cfg);
        let leaf = seed
            .departments
            .iter()
            .find(|d| seed.depth_of(d.id) == Some(seed.max_depth()))
            .map(|d| d.id)
            .unwrap();
        // 2025-03-01 00:00 in China, as DingTalk counts hire dates.
        let hired_ms = 1_740_758_400_000;
        let created = dt
            .user_create(&UserInput {
                name: Some("欧阳新".into()),
                mobile: Some("13912345678".into()),
                dept_id_list: Some(vec![DeptId(leaf as i64)]),
                job_number: Some("N0001".into()),
                title: Some("实习生".into()),
                email: Some("ouyang.xin@example-hz.com".into()),
                hired_date: Some(hired_ms),
                ..Default::default()
            })
            .await
            .unwrap();
        let new_user = ExpectedUser {
            userid: created.userid.as_str().to_owned(),
            name: "欧阳新".into(),
            mobile: "13912345678".into(),
            email: Some("ouyang.xin@example-hz.com".into()),
            job_number: "N0001".into(),
            dept: leaf,
            title: "实习生".into(),
            hired_date: Some("2025-03-01".into()),
        };
        let people: Vec<_> = seed
            .users
            .iter()
            .filter(|u| u.active)
            .skip(10)
            .take(2)
            .collect();
        let modified = (
            people[0].userid.clone(),
            format!("{}（改）", people[0].name),
            "高级经理".to_owned(),
        );
        dt.user_update(&UserInput {
            userid: Some(UserId::new(modified.0.clone())),
            name: Some(modified.1.clone()),
            title: Some(modified.2.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
        let leaver = people[1].userid.clone();
        dt.user_delete(&UserId::new(leaver.clone())).await.unwrap();
        let renamed = seed
            .departments
            .iter()
            .find(|d| seed.depth_of(d.id) == Some(2))
            .unwrap()
            .id;
        dt.department_update(&DepartmentInput {
            dept_id: Some(DeptId(renamed as i64)),
            name: Some("数字化转型部".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        let moved = seed
            .departments
            .iter()
            .find(|d| seed.depth_of(d.id) == Some(3) && d.parent_id != Some(renamed))
            .unwrap()
            .id;
        dt.department_update(&DepartmentInput {
            dept_id: Some(DeptId(moved as i64)),
            parent_id: Some(DeptId(renamed as i64)),
            ..Default::default()
        })
        .await
        .unwrap();
        ContactChanges {
            new_user,
            modified,
            leaver,
            renamed: (renamed, "数字化转型部".into()),
            moved: (moved, renamed),
        }
    }
}

/// A person as the target must hold them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedUser {
    pub userid: String,
    pub name: String,
    pub mobile: String,
    pub email: Option<String>,
    pub job_number: String,
    /// Main department.
    pub dept: u64,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub hired_date: Option<String>,
}

/// A department as the target must hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedDept {
    pub id: u64,
    pub name: String,
    /// `None` for the root.
    pub parent: Option<u64>,
}

/// The organisation a target must mirror: the seed, plus the changes a test made in DingTalk.
/// Values are given per mapped field as text (`None` for null), as [`org_flow_toml`] maps them.
#[derive(Debug, Clone)]
pub struct ExpectedOrg {
    pub departments: std::collections::BTreeMap<u64, ExpectedDept>,
    /// Active people by userid.
    pub users: std::collections::BTreeMap<String, ExpectedUser>,
    /// People who left after the target had them: disabled (or deleted) there.
    pub left: std::collections::BTreeMap<String, ExpectedUser>,
}

impl ExpectedOrg {
    pub fn from_seed(seed: &Seed) -> ExpectedOrg {
        let departments = seed
            .departments
            .iter()
            .map(|d| {
                (
                    d.id,
                    ExpectedDept {
                        id: d.id,
                        name: d.name.clone(),
                        parent: d.parent_id,
                    },
                )
            })
            .collect();
        let users = seed
            .users
            .iter()
            .filter(|u| u.active)
            .map(|u| {
                (
                    u.userid.clone(),
                    ExpectedUser {
                        userid: u.userid.clone(),
                        name: u.name.clone(),
                        mobile: u.mobile.clone(),
                        email: u.email.clone().filter(|e| !e.is_empty()),
                        job_number: u.job_number.clone(),
                        dept: u.dept_ids.first().copied().unwrap_or(1),
                        title: u.title.clone(),
                        hired_date: Some(u.hired_date.clone()).filter(|d| !d.is_empty()),
                    },
                )
            })
            .collect();
        ExpectedOrg {
            departments,
            users,
            left: std::collections::BTreeMap::new(),
        }
    }

    /// The same organisation after `changes`.
    pub fn apply(&mut self, changes: &ContactChanges) {
        self.users
            .insert(changes.new_user.userid.clone(), changes.new_user.clone());
        let (userid, name, title) = &changes.modified;
        let u = self.users.get_mut(userid).unwrap();
        u.name = name.clone();
        u.title = title.clone();
        let gone = self.users.remove(&changes.leaver).unwrap();
        self.left.insert(changes.leaver.clone(), gone);
        self.departments.get_mut(&changes.renamed.0).unwrap().name = changes.renamed.1.clone();
        self.departments.get_mut(&changes.moved.0).unwrap().parent = Some(changes.moved.1);
    }

    /// The departments a sync writes: every one but the root, by target key (`D<id>`).
    pub fn synced_departments(&self) -> impl Iterator<Item = &ExpectedDept> {
        self.departments.values().filter(|d| d.parent.is_some())
    }

    /// Names from the top (below the root), joined with `/`.
    pub fn path(&self, id: u64) -> String {
        let mut names = Vec::new();
        let mut at = self.departments.get(&id);
        while let Some(d) = at.filter(|d| d.parent.is_some()) {
            names.push(d.name.clone());
            at = d.parent.and_then(|p| self.departments.get(&p));
        }
        names.reverse();
        names.join("/")
    }

    /// The mapped fields of a department, as text.
    pub fn dept_fields(&self, d: &ExpectedDept) -> Vec<(&'static str, Option<String>)> {
        let path = self.path(d.id);
        let level = path.split('/').count();
        vec![
            ("code", Some(format!("D{}", d.id))),
            ("name", Some(d.name.clone())),
            (
                "parent_code",
                d.parent.filter(|p| *p != 1).map(|p| format!("D{p}")),
            ),
            ("full_path", Some(path)),
            ("tree_level", Some(level.to_string())),
        ]
    }

    /// The mapped fields of a person, as text.
    pub fn user_fields(u: &ExpectedUser) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("employee_no", Some(u.job_number.clone())),
            ("dingtalk_userid", Some(u.userid.clone())),
            ("name", Some(u.name.clone())),
            ("mobile", Some(u.mobile.clone())),
            ("email", u.email.clone()),
            (
                "dept_code",
                Some(u.dept).filter(|d| *d != 1).map(|d| format!("D{d}")),
            ),
            ("title", Some(u.title.clone())),
            ("hired_on", u.hired_date.clone()),
        ]
    }
}

/// Compares one target record, given as field → text, with the expected fields; every
/// difference is named with the record.
pub fn assert_fields(
    what: &str,
    actual: &HashMap<String, Option<String>>,
    expected: &[(&'static str, Option<String>)],
) {
    for (field, want) in expected {
        let got = actual
            .get(*field)
            .unwrap_or_else(|| panic!("{what}: field `{field}` missing in the target"));
        assert_eq!(got, want, "{what}: field `{field}`");
    }
}

/// A JSON value as the text [`ExpectedOrg`] compares (`None` for null).
pub fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Every dead letter of the store.
pub async fn dead_letters(store: &Arc<dyn Store>) -> Vec<store::Job> {
    store
        .list_jobs(&store::JobFilter {
            status: Some(JobStatus::Dead),
            limit: 1000,
            ..store::JobFilter::default()
        })
        .await
        .unwrap()
}

/// An `org_sync.entity` job for each entity the changes touched, as a repeated event would
/// make: each must find its target already in step.
pub async fn enqueue_entity_jobs(store: &Arc<dyn Store>, flow: &str, changes: &ContactChanges) {
    let jobs = [
        ("user", changes.new_user.userid.clone()),
        ("user", changes.modified.0.clone()),
        ("user", changes.leaver.clone()),
        ("department", changes.renamed.0.to_string()),
        ("department", changes.moved.0.to_string()),
    ];
    for (entity, id) in jobs {
        let job = store::NewJob::new(
            "org_sync.entity",
            serde_json::json!({"flow": flow, "entity": entity, "id": id}),
            store::now_ms(),
        )
        .flow(flow);
        store.enqueue(&job).await.unwrap();
    }
}

/// Every link of a flow, in source-key order (paged past the store's page size).
pub async fn all_links(store: &Arc<dyn Store>, flow: &str) -> Vec<store::Link> {
    let mut out: Vec<store::Link> = Vec::new();
    loop {
        let after = out.last().map(|l| l.source_key.clone());
        let page = store
            .list_links(flow, "", after.as_deref(), 1000)
            .await
            .unwrap();
        let n = page.len();
        out.extend(page);
        if n < 1000 {
            return out;
        }
    }
}

/// The outcome of the latest transfer-log row of one source key (`user:<id>`, `dept:<id>`).
pub async fn last_outcome(store: &Arc<dyn Store>, flow: &str, source_key: &str) -> String {
    store
        .list_transfers(&store::TransferFilter {
            flow: Some(flow.to_owned()),
            source_key: Some(source_key.to_owned()),
            limit: 1,
        })
        .await
        .unwrap()
        .first()
        .map(|t| t.entry.outcome.clone())
        .unwrap_or_default()
}
