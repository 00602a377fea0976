//! Org sync into an eHR over HTTP (the `sandbox::ehr` simulator, bearer token and Standard
//! Webhooks signatures both required) against the DingTalk simulator, on every store backend:
//! a 2,000-person company on a 5-level tree synced in full, field by field, and a second full
//! run writes nothing; then changes made through the DingTalk API (user add, modify, leave;
//! department rename and move) followed through their events, and re-delivered events change
//! nothing; one unmappable person goes to the dead letters while the other 1,999 are synced,
//! and is created after the fix and a replay; a dry run plans the repair of records edited in
//! the eHR without writing, and reconciliation applies it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod org_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use engine::config::Config;
use engine::orgsync::{Progress, SyncMode};
use hmac::{Hmac, Mac};
use org_support::{
    ExpectedOrg, World, all_links, assert_fields, break_one_email, dead_letters, drain,
    enqueue_entity_jobs, handlers, json_text, last_outcome, org_flow_toml, strict_email, syncs,
    without_kingdee_flow,
};
use reqwest::{Method, StatusCode};
use sandbox::ehr::{Counters, EhrSandbox, EhrSandboxConfig};
use sandbox::seed::Seed;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use store::{JobStatus, Store, SyncRunStatus};
use store_testkit::test_stores;

const FLOW: &str = "org_to_ehr";
const TOKEN: &str = "ehr-sandbox-token-7f3a9c";
/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An eHR simulator on a local port.
struct Ehr {
    sb: EhrSandbox,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ehr {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The HTTP target's settings for one eHR collection: PUT to create or replace, DELETE to
/// disable (the eHR marks the record `active = false`), and the paged list reconciliation reads.
fn collection_settings(collection: &str) -> String {
    format!(
        r#"upsert = {{ method = "PUT", path = "/api/{collection}/{{key}}" }}
disable = {{ method = "DELETE", path = "/api/{collection}/{{key}}" }}
list = {{ path = "/api/{collection}", items = "/items", next = "/next_cursor", cursor_param = "cursor", limit_param = "limit", page_size = 500, key_field = "key", disabled_field = "active", disabled_when = false }}
id_pointer = "/id""#
    )
}

impl Ehr {
    async fn start() -> Ehr {
        let sb = EhrSandbox::new(EhrSandboxConfig {
            bearer_token: Some(TOKEN.into()),
            hmac_secret: Some(SECRET.into()),
            ..EhrSandboxConfig::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = sb.clone();
        let task = tokio::spawn(async move {
            let _ = sandbox::ehr::serve(listener, served).await;
        });
        Ehr { sb, url, task }
    }

    /// The example configuration (its Kingdee flow off) plus the eHR connection and the
    /// `org_to_ehr` flow; `edit` is applied to the whole text.
    fn config(&self, world: &World, edit: impl Fn(String) -> String) -> Config {
        let extra = format!(
            r#"
[connections.ehr]
kind = "http"
base_url = "{url}"
auth_header = "Bearer {TOKEN}"
hmac_secret = "{SECRET}"
timeout_seconds = 10
{flow}"#,
            url = self.url,
            flow = org_flow_toml(
                FLOW,
                "ehr",
                &collection_settings("departments"),
                &collection_settings("employees"),
            ),
        );
        world.config(|t| edit(without_kingdee_flow(t) + extra.as_str()))
    }

    /// A request straight to the eHR, as its own users would make (signed like any client).
    async fn request(&self, method: Method, path: &str, body: Option<Value>) -> StatusCode {
        let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
        let id = format!("msg_test_{:08x}", rand::random::<u32>());
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64.decode(SECRET.trim_start_matches("whsec_")).unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(&body);
        let signature = b64.encode(mac.finalize().into_bytes());
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", format!("v1,{signature}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A collection's records by key.
    fn records(&self, collection: &str) -> HashMap<String, Map<String, Value>> {
        self.sb
            .records(collection)
            .into_iter()
            .map(|r| (r["key"].as_str().unwrap().to_owned(), r))
            .collect()
    }

    /// Everything the eHR holds, for before/after comparisons.
    fn snapshot(&self) -> Vec<Map<String, Value>> {
        let mut all = self.sb.records("departments");
        all.extend(self.sb.records("employees"));
        all
    }
}

fn as_text(record: &Map<String, Value>) -> HashMap<String, Option<String>> {
    record
        .iter()
        .map(|(k, v)| (k.clone(), json_text(v)))
        .collect()
}

/// Writes the eHR has received (created, updated, disabled).
fn writes(c: &Counters) -> (u64, u64, u64) {
    (c.created, c.updated, c.disabled)
}

/// The eHR holds exactly the organisation `expected`, field by field: every person active
/// (leavers present but inactive) and every department below the root.
fn assert_ehr_matches(ehr: &Ehr, expected: &ExpectedOrg) {
    let employees = ehr.records("employees");
    assert_eq!(
        employees.len(),
        expected.users.len() + expected.left.len(),
        "one eHR employee per DingTalk person (leavers kept, inactive)"
    );
    for (people, active) in [(&expected.users, true), (&expected.left, false)] {
        for u in people.values() {
            let what = format!("employee {} ({})", u.job_number, u.name);
            let record = employees
                .get(&u.job_number)
                .unwrap_or_else(|| panic!("{what} missing in the eHR"));
            assert_fields(&what, &as_text(record), &ExpectedOrg::user_fields(u));
            assert_eq!(record["active"], Value::Bool(active), "{what}: active");
            assert!(record["id"].as_str().is_some_and(|id| id.starts_with('E')));
        }
    }
    let departments = ehr.records("departments");
    assert_eq!(
        departments.len(),
        expected.synced_departments().count(),
        "one eHR department per DingTalk department below the root"
    );
    for d in expected.synced_departments() {
        let what = format!("department D{} ({})", d.id, d.name);
        let record = departments
            .get(&format!("D{}", d.id))
            .unwrap_or_else(|| panic!("{what} missing in the eHR"));
        assert_fields(&what, &as_text(record), &expected.dept_fields(d));
        assert_eq!(record["active"], Value::Bool(true), "{what}: active");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_sync_then_contact_events_keep_the_ehr_in_step() {
    let seed = Seed::generate(2000, 120);
    assert!(seed.max_depth() >= 4, "a tree at least 5 levels deep");
    let active = seed.users.iter().filter(|u| u.active).count() as u64;
    let depts = seed.departments.len() as u64 - 1;
    for ts in test_stores().await {
        let clock = Instant::now();
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let ehr = Ehr::start().await;
        let cfg = ehr.config(&world, |t| t);
        let syncs = syncs(&cfg, &store).await;
        let sync = &syncs[FLOW];

        // Full sync of the whole company.
        let summary = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(
            summary.status,
            SyncRunStatus::Success,
            "{}: {:?}",
            ts.name,
            summary.report
        );
        assert!(summary.report.complete);
        assert_eq!(summary.counts.users, active);
        assert_eq!(summary.counts.departments, depts);
        assert_eq!(summary.counts.created, active + depts);
        assert_eq!(summary.counts.failed, 0);
        let mut expected = ExpectedOrg::from_seed(&seed);
        assert_ehr_matches(&ehr, &expected);
        assert_eq!(writes(&ehr.sb.counters()), (active + depts, 0, 0));
        let someone = expected.users.values().next().unwrap();
        let identity = store
            .find_identity(&store::IdentityKey::DingtalkUserId(someone.userid.clone()))
            .await
            .unwrap()
            .expect("identity recorded");
        assert_eq!(
            identity.fields.ehr_number.as_deref(),
            Some(someone.job_number.as_str())
        );
        let full_time = clock.elapsed();

        // A second full run writes nothing: every record's digest is in its link.
        let before = ehr.sb.counters();
        let again = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(again.status, SyncRunStatus::Success);
        assert_eq!(again.counts.writes(), 0, "{:?}", again.counts);
        assert_eq!(again.counts.unchanged, active + depts);
        assert_eq!(
            ehr.sb.counters().requests,
            before.requests,
            "nothing sent to the eHR"
        );
        let last = store.last_successful_sync_run(FLOW).await.unwrap().unwrap();
        assert_eq!(last.id, again.run_id);

        // Changes in DingTalk, through its API; their events through the inbox.
        let changes = world.make_contact_changes(&cfg, &seed).await;
        expected.apply(&changes);
        assert_eq!(world.deliver_events(store.as_ref()).await, 5);
        let h = handlers(&cfg, &store).await;
        drain(&store, h.clone()).await;
        let dead = dead_letters(&store).await;
        assert!(dead.is_empty(), "{}: {dead:?}", ts.name);
        assert_ehr_matches(&ehr, &expected);
        let leaver = &expected.left[&changes.leaver];
        assert_eq!(
            ehr.records("employees")[&leaver.job_number]["active"],
            Value::Bool(false),
            "the leaver is disabled"
        );
        let identity = store
            .find_identity(&store::IdentityKey::DingtalkUserId(
                changes.new_user.userid.clone(),
            ))
            .await
            .unwrap()
            .expect("the new person's identity");
        assert_eq!(identity.fields.ehr_number.as_deref(), Some("N0001"));

        // DingTalk re-pushes every event: stored once. And each entity job run again finds
        // its record in step: nothing is sent, nothing changes.
        let counters = ehr.sb.counters();
        let records = ehr.snapshot();
        let links = all_links(&store, FLOW).await;
        assert_eq!(world.redeliver_all(store.as_ref()).await, 0);
        enqueue_entity_jobs(&store, FLOW, &changes).await;
        drain(&store, h).await;
        assert_eq!(ehr.sb.counters().requests, counters.requests);
        assert_eq!(writes(&ehr.sb.counters()), writes(&counters));
        assert_eq!(ehr.snapshot(), records);
        assert_eq!(all_links(&store, FLOW).await, links);
        for key in [
            format!("user:{}", changes.new_user.userid),
            format!("user:{}", changes.modified.0),
            format!("user:{}", changes.leaver),
            format!("dept:{}", changes.renamed.0),
            format!("dept:{}", changes.moved.0),
        ] {
            assert_eq!(last_outcome(&store, FLOW, &key).await, "unchanged", "{key}");
        }
        assert!(dead_letters(&store).await.is_empty());
        // A full run now agrees: nothing to write, the leaver stays disabled.
        let after = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(after.status, SyncRunStatus::Success);
        assert_eq!(after.counts.writes(), 0, "{:?}", after.report);
        assert_ehr_matches(&ehr, &expected);
        eprintln!(
            "{}: full sync of {active} people and {depts} departments in {full_time:.1?}; \
             whole scenario in {:.1?}",
            ts.name,
            clock.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mapping_error_then_dry_run_and_reconcile_repair_the_ehr() {
    let mut seed = Seed::generate(2000, 120);
    let bad = break_one_email(&mut seed);
    let active = seed.users.iter().filter(|u| u.active).count() as u64;
    let depts = seed.departments.len() as u64 - 1;
    for ts in test_stores().await {
        let clock = Instant::now();
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let ehr = Ehr::start().await;

        // The e-mail check refuses one person: the rest are synced.
        let strict = ehr.config(&world, strict_email);
        let sync = syncs(&strict, &store).await.remove(FLOW).unwrap();
        let run = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(run.status, SyncRunStatus::Partial, "{}", ts.name);
        assert!(run.report.complete, "the snapshot itself is complete");
        assert_eq!(run.counts.failed, 1);
        assert_eq!(run.counts.created, active - 1 + depts);
        assert_eq!(run.report.rejected.len(), 1);
        assert_eq!(run.report.rejected[0].field.as_deref(), Some("email"));
        let employees = ehr.records("employees");
        assert_eq!(
            employees.len() as u64,
            active - 1,
            "everyone else is synced"
        );
        assert!(!employees.contains_key(&bad.job_number));
        let dead = dead_letters(&store).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        let reason = dead[0].last_error.clone().unwrap_or_default();
        assert!(reason.contains("email"), "the field is named: {reason}");
        assert_eq!(dead[0].kind, "org_sync.entity");
        assert_eq!(dead[0].payload["id"], Value::String(bad.userid.clone()));

        // The mapping is fixed (no e-mail check) and the dead letter replayed.
        let cfg = ehr.config(&world, |t| t);
        store.replay_job(dead[0].id, store::now_ms()).await.unwrap();
        drain(&store, handlers(&cfg, &store).await).await;
        assert_eq!(
            store.get_job(dead[0].id).await.unwrap().unwrap().status,
            JobStatus::Done
        );
        let expected = ExpectedOrg::from_seed(&seed);
        assert_ehr_matches(&ehr, &expected);
        assert_eq!(
            ehr.records("employees")[&bad.job_number]["email"],
            json!("欧阳娜#example-hz.com")
        );
        let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
        let full = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(full.status, SyncRunStatus::Success, "{:?}", full.report);
        assert_eq!(full.counts.writes(), 0, "{:?}", full.counts);

        // Someone edits the eHR by hand: a person's name and title, another person
        // deactivated, a department renamed.
        let people: Vec<_> = expected.users.values().take(2).collect();
        let dept = expected.synced_departments().nth(5).unwrap();
        let edited = [
            (
                Method::PATCH,
                format!("/api/employees/{}", people[0].job_number),
                Some(json!({"name": "手工改名", "title": "临时工"})),
            ),
            (
                Method::DELETE,
                format!("/api/employees/{}", people[1].job_number),
                None,
            ),
            (
                Method::PATCH,
                format!("/api/departments/D{}", dept.id),
                Some(json!({"name": "手工部门"})),
            ),
        ];
        for (method, path, body) in edited {
            assert_eq!(ehr.request(method, &path, body).await, StatusCode::OK);
        }
        ehr.sb.reset_counters();
        let links = all_links(&store, FLOW).await;

        // A dry run plans the three repairs and writes nothing.
        let plan = sync
            .run(SyncMode::DryRun, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(plan.counts.writes(), 0);
        let users = plan.report.users.clone().unwrap();
        assert_eq!((users.create, users.update, users.disable), (0, 2, 0));
        let mut planned: Vec<(String, Vec<String>)> = users.sample_update.clone();
        planned.sort();
        let mut want = vec![
            (
                people[0].job_number.clone(),
                vec!["name".to_owned(), "title".to_owned()],
            ),
            (people[1].job_number.clone(), vec!["(enable)".to_owned()]),
        ];
        want.sort();
        assert_eq!(planned, want);
        let departments = plan.report.departments.clone().unwrap();
        assert_eq!(
            (departments.create, departments.update, departments.disable),
            (0, 1, 0)
        );
        assert_eq!(
            departments.sample_update,
            vec![(format!("D{}", dept.id), vec!["name".to_owned()])]
        );
        let counters = ehr.sb.counters();
        assert_eq!(writes(&counters), (0, 0, 0), "a dry run writes nothing");
        assert!(counters.requests > 0, "the dry run read the eHR");
        assert_eq!(
            counters.by_status.keys().copied().collect::<Vec<_>>(),
            vec![200],
            "only list pages were read: {counters:?}"
        );
        let employees = ehr.records("employees");
        assert_eq!(employees[&people[0].job_number]["name"], json!("手工改名"));
        assert_eq!(employees[&people[1].job_number]["active"], json!(false));
        assert_eq!(all_links(&store, FLOW).await, links);

        // Reconciliation applies the same plan: the eHR is DingTalk's again.
        let applied = sync
            .run(SyncMode::Reconcile, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(
            applied.status,
            SyncRunStatus::Success,
            "{:?}",
            applied.report
        );
        assert_eq!(applied.counts.updated, 3, "{:?}", applied.counts);
        assert_eq!(writes(&ehr.sb.counters()), (0, 3, 0));
        assert_ehr_matches(&ehr, &expected);
        let again = sync
            .run(SyncMode::Reconcile, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(again.counts.writes(), 0, "{:?}", again.report);
        eprintln!(
            "{}: mapping error, replay, dry run and reconcile in {:.1?}",
            ts.name,
            clock.elapsed()
        );
    }
}

/// Known bug (ignored until fixed): with `master_fields = { title = "target" }`, an update of
/// an existing person leaves `title` out of the write (`plan::respect_master(rec, None, …)` in
/// `recipe::sync_entity` and `OrgSync::for_existing`), but the HTTP target's upsert is a PUT
/// that replaces the record, so the eHR's own title is erased all the same: the target is the
/// title's master and must keep it (the SQL target keeps it: its UPDATE names only the columns
/// sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_keeps_the_targets_own_fields() {
    use dingtalk::UserId;
    use dingtalk::contacts::UserInput;
    let seed = Seed::generate(200, 20);
    let ts = store_testkit::sqlite_store().await.unwrap();
    let store: Arc<dyn Store> = Arc::clone(&ts.store);
    let world = World::start(&seed).await;
    let ehr = Ehr::start().await;
    let section = format!("[flows.{FLOW}.options.departments]");
    let cfg = ehr.config(&world, |t| {
        t.replace(
            &section,
            &format!("[flows.{FLOW}.options.master_fields]\ntitle = \"target\"\n\n{section}"),
        )
    });
    let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
    let run = sync
        .run(SyncMode::Full, None, &Progress::new())
        .await
        .unwrap();
    assert_eq!(run.status, SyncRunStatus::Success);
    let person = seed.users.iter().find(|u| u.active).unwrap();
    let path = format!("/api/employees/{}", person.job_number);
    let edit = json!({"title": "财务总监"});
    assert_eq!(
        ehr.request(Method::PATCH, &path, Some(edit)).await,
        StatusCode::OK
    );
    world
        .dingtalk(&cfg)
        .user_update(&UserInput {
            userid: Some(UserId::new(person.userid.clone())),
            name: Some(format!("{}（改）", person.name)),
            ..Default::default()
        })
        .await
        .unwrap();
    world.deliver_events(store.as_ref()).await;
    drain(&store, handlers(&cfg, &store).await).await;
    let record = &ehr.records("employees")[&person.job_number];
    assert_eq!(record["name"], json!(format!("{}（改）", person.name)));
    assert_eq!(
        record.get("title"),
        Some(&json!("财务总监")),
        "the eHR keeps its title"
    );
}

/// Known bug (ignored until fixed): when a person's job number (the target key) changes in
/// DingTalk, the event writes a new record under the new key and re-points the link, and the
/// record under the old key stays active for good: no run disables it (reconciliation counts it
/// `unmanaged`). One person, two active employees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_key_disables_the_old_record() {
    use dingtalk::UserId;
    use dingtalk::contacts::UserInput;
    let seed = Seed::generate(200, 20);
    let ts = store_testkit::sqlite_store().await.unwrap();
    let store: Arc<dyn Store> = Arc::clone(&ts.store);
    let world = World::start(&seed).await;
    let ehr = Ehr::start().await;
    let cfg = ehr.config(&world, |t| t);
    let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
    sync.run(SyncMode::Full, None, &Progress::new())
        .await
        .unwrap();
    let person = seed.users.iter().find(|u| u.active).unwrap();
    world
        .dingtalk(&cfg)
        .user_update(&UserInput {
            userid: Some(UserId::new(person.userid.clone())),
            job_number: Some("X9999".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    world.deliver_events(store.as_ref()).await;
    drain(&store, handlers(&cfg, &store).await).await;
    sync.run(SyncMode::Reconcile, None, &Progress::new())
        .await
        .unwrap();
    let employees = ehr.records("employees");
    assert_eq!(employees["X9999"]["active"], json!(true));
    let active: Vec<_> = employees
        .values()
        .filter(|r| r["dingtalk_userid"] == json!(person.userid) && r["active"] == json!(true))
        .map(|r| r["key"].clone())
        .collect();
    assert_eq!(active, vec![json!("X9999")], "one active record per person");
}
