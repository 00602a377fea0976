//! Org sync into Kingdee against the simulators, on every store backend: a 2,000-person company
//! on a 5-level tree synced in full; then changes made through the DingTalk API (user add,
//! modify, leave; department rename and move) followed through their events; re-delivered
//! events change nothing; an incomplete snapshot disables nothing; one unmappable person goes
//! to the dead letters while the other 1,999 are synced, and is synced after the fix and a
//! replay; a dry run plans without writing; reconciliation repairs Kingdee by the master policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod org_support;

use std::collections::HashMap;
use std::sync::Arc;

use dingtalk::contacts::{DepartmentInput, UserInput};
use dingtalk::{DeptId, UserId};
use engine::orgsync::{Progress, SyncMode};
use org_support::{FLOW, World, drain, handlers, syncs};
use sandbox::seed::Seed;
use serde_json::Value;
use store::{JobFilter, JobStatus, Store, SyncRunStatus};
use store_testkit::test_stores;

const EMP_KEYS: [&str; 6] = [
    "FStaffNumber",
    "FName",
    "FMobile",
    "FDeptId.FNumber",
    "FForbidStatus",
    "FPostName",
];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Every active seed person is a Kingdee employee with the same name, mobile and department.
async fn assert_employees_match(world: &World, cfg: &engine::config::Config, seed: &Seed) {
    let rows = world.kingdee_rows(cfg, "BD_Empinfo", &EMP_KEYS).await;
    let active: Vec<_> = seed.users.iter().filter(|u| u.active).collect();
    assert_eq!(rows.len(), active.len(), "one employee per DingTalk person");
    for u in active {
        let row = rows
            .get(&u.job_number)
            .unwrap_or_else(|| panic!("{} ({}) missing in Kingdee", u.job_number, u.name));
        assert_eq!(text(&row[1]), u.name);
        assert_eq!(text(&row[2]), u.mobile);
        let dept = u.dept_ids.first().copied().unwrap_or(1);
        let want = if dept == 1 {
            String::new()
        } else {
            format!("DT{dept}")
        };
        assert_eq!(text(&row[3]), want, "department of {}", u.name);
        assert_eq!(text(&row[4]), "A", "{} enabled", u.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_sync_then_contact_events_keep_kingdee_in_step() {
    let seed = Seed::generate(2000, 120);
    assert!(seed.max_depth() >= 4, "a tree at least 5 levels deep");
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let cfg = world.config(|t| t);
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
            "{:?}",
            summary.report
        );
        assert!(summary.report.complete);
        let active = seed.users.iter().filter(|u| u.active).count() as u64;
        assert_eq!(summary.counts.users, active);
        assert_eq!(
            summary.counts.departments,
            seed.departments.len() as u64 - 1
        );
        assert_eq!(
            summary.counts.created,
            active + seed.departments.len() as u64 - 1
        );
        assert_eq!(summary.counts.failed, 0);
        assert_employees_match(&world, &cfg, &seed).await;
        let depts = world
            .kingdee_rows(
                &cfg,
                "BD_Department",
                &["FNumber", "FName", "FParentID.FNumber"],
            )
            .await;
        assert_eq!(depts.len(), seed.departments.len() - 1);
        for d in seed.departments.iter().filter(|d| d.parent_id.is_some()) {
            let row = &depts[&format!("DT{}", d.id)];
            assert_eq!(text(&row[1]), d.name);
            let parent = d.parent_id.filter(|p| *p != 1).map(|p| format!("DT{p}"));
            assert_eq!(
                text(&row[2]),
                parent.unwrap_or_default(),
                "parent of {}",
                d.name
            );
        }
        // The identity table was filled on the way.
        let someone = seed.users.iter().find(|u| u.active).unwrap();
        let id = store
            .find_identity(&store::IdentityKey::DingtalkUserId(someone.userid.clone()))
            .await
            .unwrap()
            .expect("identity recorded");
        assert_eq!(
            id.fields.kingdee_user.as_deref(),
            Some(someone.job_number.as_str())
        );
        assert_eq!(id.fields.matched_by, "job_number");

        // A second full run writes nothing: every record's digest is in its link.
        let again = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(again.status, SyncRunStatus::Success);
        assert_eq!(again.counts.writes(), 0, "{:?}", again.counts);
        assert_eq!(
            again.counts.unchanged,
            active + seed.departments.len() as u64 - 1
        );
        let last = store.last_successful_sync_run(FLOW).await.unwrap().unwrap();
        assert_eq!(last.id, again.run_id);

        // Changes in DingTalk, through its API.
        let dt = world.dingtalk(&cfg);
        let leaf = seed
            .departments
            .iter()
            .filter(|d| seed.depth_of(d.id) == Some(seed.max_depth()))
            .map(|d| d.id)
            .next()
            .unwrap();
        let new_user = dt
            .user_create(&UserInput {
                name: Some("欧阳新".into()),
                mobile: Some("13912345678".into()),
                dept_id_list: Some(vec![DeptId(leaf as i64)]),
                job_number: Some("N0001".into()),
                title: Some("实习生".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let movers: Vec<_> = seed
            .users
            .iter()
            .filter(|u| u.active)
            .skip(10)
            .take(2)
            .collect();
        dt.user_update(&UserInput {
            userid: Some(UserId::new(movers[0].userid.clone())),
            name: Some(format!("{}（改）", movers[0].name)),
            ..Default::default()
        })
        .await
        .unwrap();
        dt.user_delete(&UserId::new(movers[1].userid.clone()))
            .await
            .unwrap();
        let renamed = seed
            .departments
            .iter()
            .find(|d| seed.depth_of(d.id) == Some(2))
            .unwrap();
        dt.department_update(&DepartmentInput {
            dept_id: Some(DeptId(renamed.id as i64)),
            name: Some("数字化转型部".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        let moved = seed
            .departments
            .iter()
            .find(|d| seed.depth_of(d.id) == Some(3) && d.parent_id != Some(renamed.id))
            .unwrap();
        dt.department_update(&DepartmentInput {
            dept_id: Some(DeptId(moved.id as i64)),
            parent_id: Some(DeptId(renamed.id as i64)),
            ..Default::default()
        })
        .await
        .unwrap();

        // The events travel through the inbox to org_sync.entity jobs.
        let delivered = world.deliver_events(store.as_ref()).await;
        assert_eq!(delivered, 5);
        let h = handlers(&cfg, &store).await;
        drain(&store, h.clone()).await;
        let emps = world.kingdee_rows(&cfg, "BD_Empinfo", &EMP_KEYS).await;
        let added = &emps["N0001"];
        assert_eq!(text(&added[1]), "欧阳新");
        assert_eq!(text(&added[3]), format!("DT{leaf}"));
        assert_eq!(
            text(&emps[&movers[0].job_number][1]),
            format!("{}（改）", movers[0].name)
        );
        assert_eq!(
            text(&emps[&movers[1].job_number][4]),
            "B",
            "the leaver is forbidden"
        );
        let depts = world
            .kingdee_rows(
                &cfg,
                "BD_Department",
                &["FNumber", "FName", "FParentID.FNumber"],
            )
            .await;
        assert_eq!(
            text(&depts[&format!("DT{}", renamed.id)][1]),
            "数字化转型部"
        );
        assert_eq!(
            text(&depts[&format!("DT{}", moved.id)][2]),
            format!("DT{}", renamed.id)
        );
        let ident = store
            .find_identity(&store::IdentityKey::DingtalkUserId(
                new_user.userid.as_str().to_owned(),
            ))
            .await
            .unwrap()
            .expect("new employee's identity");
        assert_eq!(ident.fields.kingdee_user.as_deref(), Some("N0001"));

        // DingTalk re-pushes every event: stored once, nothing new to do.
        let modified_before: HashMap<i64, String> = world
            .kd
            .db()
            .data("BD_Empinfo")
            .unwrap()
            .records
            .values()
            .map(|r| (r.id, r.modified.clone()))
            .collect();
        assert_eq!(world.redeliver_all(store.as_ref()).await, 0);
        // And an entity job run again for a person already in step changes nothing.
        let job = store::NewJob::new(
            "org_sync.entity",
            serde_json::json!({"flow": FLOW, "entity": "user", "id": movers[0].userid}),
            store::now_ms(),
        )
        .flow(FLOW);
        store.enqueue(&job).await.unwrap();
        drain(&store, h).await;
        let modified_after: HashMap<i64, String> = world
            .kd
            .db()
            .data("BD_Empinfo")
            .unwrap()
            .records
            .values()
            .map(|r| (r.id, r.modified.clone()))
            .collect();
        assert_eq!(
            modified_before, modified_after,
            "no Kingdee record was written again"
        );
        let dead = store
            .list_jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert!(dead.is_empty(), "{dead:?}");
        // A full run now agrees: nothing to write, and the leaver stays disabled.
        let after = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(after.counts.writes(), 0, "{:?}", after.report);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incomplete_snapshot_disables_nothing_and_reports_partial() {
    let seed = Seed::generate(400, 30);
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let cfg = world.config(|t| t);
        let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
        let first = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(
            first.status,
            SyncRunStatus::Success,
            "{:?} {:?}",
            first.counts,
            first.report
        );

        // Five people leave, but the events are lost; then DingTalk answers half the calls
        // with a system error, so some reads fail even after their retries.
        let dt = world.dingtalk(&cfg);
        let leavers: Vec<_> = seed.users.iter().filter(|u| u.active).take(5).collect();
        for u in &leavers {
            dt.user_delete(&UserId::new(u.userid.clone()))
                .await
                .unwrap();
        }
        world.dt.set_faults(|f| f.error_rate = 0.6);
        let partial = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(partial.status, SyncRunStatus::Partial);
        assert!(!partial.report.complete);
        assert!(partial.report.gaps_total > 0);
        assert_eq!(
            partial.counts.disabled, 0,
            "nothing disabled from an incomplete snapshot"
        );
        let run = store.get_sync_run(partial.run_id).await.unwrap().unwrap();
        assert_eq!(run.status, SyncRunStatus::Partial);
        assert_eq!(run.complete, Some(false));
        let emps = world.kingdee_rows(&cfg, "BD_Empinfo", &EMP_KEYS).await;
        for u in &leavers {
            assert_eq!(
                text(&emps[&u.job_number][4]),
                "A",
                "{} still enabled",
                u.name
            );
        }
        // The last success did not move.
        let last = store.last_successful_sync_run(FLOW).await.unwrap().unwrap();
        assert_eq!(last.id, first.run_id);

        // Once DingTalk answers again, a complete snapshot disables exactly the five.
        world.dt.set_faults(|f| f.error_rate = 0.0);
        let complete = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(
            complete.status,
            SyncRunStatus::Success,
            "{:?} {:?}",
            complete.counts,
            complete.report
        );
        assert_eq!(complete.counts.disabled, 5);
        let emps = world.kingdee_rows(&cfg, "BD_Empinfo", &EMP_KEYS).await;
        for u in &leavers {
            assert_eq!(text(&emps[&u.job_number][4]), "B", "{} forbidden", u.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_unmappable_person_goes_to_the_dead_letters_and_the_rest_sync() {
    let mut seed = Seed::generate(2000, 80);
    // One person whose e-mail the configured check refuses.
    let bad = seed.users.iter().position(|u| u.active).unwrap();
    seed.users[bad].email = Some("张三#example.com".into());
    let bad_user = seed.users[bad].clone();
    let strict = |t: String| {
        t.replace(
            "to = \"FEmail\"\nfrom = \"email\"",
            "to = \"FEmail\"\nfrom = \"email\"\nregex = '^[^@\\s]+@[^@\\s]+$'",
        )
    };
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let cfg = world.config(strict);
        let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
        let run = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(run.status, SyncRunStatus::Partial);
        assert!(run.report.complete, "the snapshot itself is complete");
        assert_eq!(run.counts.failed, 1);
        let active = seed.users.iter().filter(|u| u.active).count();
        let emps = world.kingdee_rows(&cfg, "BD_Empinfo", &EMP_KEYS).await;
        assert_eq!(emps.len(), active - 1, "everyone else is synced");
        assert!(!emps.contains_key(&bad_user.job_number));
        let dead = store
            .list_jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        let reason = dead[0].last_error.clone().unwrap_or_default();
        assert!(reason.contains("FEmail"), "the field is named: {reason}");
        assert_eq!(
            dead[0].payload["id"],
            Value::String(bad_user.userid.clone())
        );

        // The mapping is fixed (no e-mail check) and the dead letter replayed.
        let fixed = world.config(|t| t);
        store.replay_job(dead[0].id, store::now_ms()).await.unwrap();
        drain(&store, handlers(&fixed, &store).await).await;
        let emps = world.kingdee_rows(&fixed, "BD_Empinfo", &EMP_KEYS).await;
        assert_eq!(emps.len(), active);
        assert_eq!(text(&emps[&bad_user.job_number][1]), bad_user.name);
        assert_eq!(
            store.get_job(dead[0].id).await.unwrap().unwrap().status,
            JobStatus::Done
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_plans_and_reconcile_repairs_by_master_policy() {
    let seed = Seed::builtin();
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let cfg = world.config(|t| t);
        let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
        sync.run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();

        // Someone edits Kingdee by hand: a name (DingTalk is its master) and a job title
        // (the example makes Kingdee the master of FPostName).
        let people: Vec<_> = seed.users.iter().filter(|u| u.active).take(2).collect();
        {
            let mut db = world.kd.db_mut();
            let form = db.forms.get_mut("BD_Empinfo").unwrap();
            let id0 = form.by_number[&people[0].job_number];
            let id1 = form.by_number[&people[1].job_number];
            form.records
                .get_mut(&id0)
                .unwrap()
                .fields
                .insert("FName".into(), "手工改名".into());
            form.records
                .get_mut(&id1)
                .unwrap()
                .fields
                .insert("FPostName".into(), "财务总监".into());
        }
        let links_before = store.list_links(FLOW, "", None, 1000).await.unwrap();

        let plan = sync
            .run(SyncMode::DryRun, None, &Progress::new())
            .await
            .unwrap();
        let users = plan.report.users.clone().unwrap();
        assert_eq!(users.update, 1, "{users:?}");
        assert_eq!(users.sample_update[0].0, people[0].job_number);
        assert_eq!(users.sample_update[0].1, vec!["FName".to_owned()]);
        assert_eq!(users.create + users.disable, 0);
        assert_eq!(plan.counts.writes(), 0);
        let emps = world.kingdee_rows(&cfg, "BD_Empinfo", &EMP_KEYS).await;
        assert_eq!(
            text(&emps[&people[0].job_number][1]),
            "手工改名",
            "a dry run writes nothing"
        );
        assert_eq!(
            store.list_links(FLOW, "", None, 1000).await.unwrap(),
            links_before
        );

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
        assert_eq!(applied.counts.updated, 1);
        let emps = world.kingdee_rows(&cfg, "BD_Empinfo", &EMP_KEYS).await;
        assert_eq!(
            text(&emps[&people[0].job_number][1]),
            people[0].name,
            "restored"
        );
        assert_eq!(
            text(&emps[&people[1].job_number][5]),
            "财务总监",
            "Kingdee keeps its title"
        );

        // With FName under manual control, a difference is a conflict that waits.
        let manual = world.config(|t| {
            t.replace(
                "FPostName = \"target\"",
                "FPostName = \"target\"\nFName = \"manual\"",
            )
        });
        let sync = syncs(&manual, &store).await.remove(FLOW).unwrap();
        {
            let mut db = world.kd.db_mut();
            let form = db.forms.get_mut("BD_Empinfo").unwrap();
            let id0 = form.by_number[&people[0].job_number];
            form.records
                .get_mut(&id0)
                .unwrap()
                .fields
                .insert("FName".into(), "手工改名".into());
        }
        let run = sync
            .run(SyncMode::Reconcile, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(run.report.conflicts.len(), 1);
        assert_eq!(run.report.conflicts[0].field.as_deref(), Some("FName"));
        let emps = world.kingdee_rows(&manual, "BD_Empinfo", &EMP_KEYS).await;
        assert_eq!(
            text(&emps[&people[0].job_number][1]),
            "手工改名",
            "left for a person"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_left_submitted_by_an_interrupted_attempt_are_updated_and_audited() {
    let seed = Seed::builtin();
    for ts in test_stores().await {
        let store: Arc<dyn Store> = Arc::clone(&ts.store);
        let world = World::start(&seed).await;
        let cfg = world.config(|t| t);
        let sync = syncs(&cfg, &store).await.remove(FLOW).unwrap();
        sync.run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        // An attempt that stopped between Submit and Audit leaves records submitted (审核中),
        // which Save refuses; and the person changed in DingTalk meanwhile.
        let people: Vec<_> = seed.users.iter().filter(|u| u.active).take(3).collect();
        {
            let mut db = world.kd.db_mut();
            let form = db.forms.get_mut("BD_Empinfo").unwrap();
            for p in &people {
                let id = form.by_number[&p.job_number];
                form.records.get_mut(&id).unwrap().status = 'B';
            }
        }
        let dt = world.dingtalk(&cfg);
        for p in &people {
            dt.user_update(&UserInput {
                userid: Some(UserId::new(p.userid.clone())),
                name: Some(format!("{}（新）", p.name)),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let run = sync
            .run(SyncMode::Full, None, &Progress::new())
            .await
            .unwrap();
        assert_eq!(run.status, SyncRunStatus::Success, "{:?}", run.report);
        assert_eq!(run.counts.updated, 3);
        let emps = world
            .kingdee_rows(
                &cfg,
                "BD_Empinfo",
                &["FStaffNumber", "FName", "FDocumentStatus"],
            )
            .await;
        for p in &people {
            let row = &emps[&p.job_number];
            assert_eq!(text(&row[1]), format!("{}（新）", p.name));
            assert_eq!(text(&row[2]), "C", "audited again");
        }
    }
}
