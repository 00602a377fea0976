//! What org sync needs from every backend: sync runs (start, resume, progress, finish once, last
//! success), paging a flow's links by key prefix, links by target, dead letters written directly.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};
use store::*;
use store_testkit::test_stores;

const T0: Millis = 1_700_000_000_000;

fn new_run(flow: &str, mode: &str, job_id: Option<JobId>, at: Millis) -> NewSyncRun {
    NewSyncRun {
        flow: flow.into(),
        mode: mode.into(),
        job_id,
        started_at: at,
    }
}

fn finish(status: SyncRunStatus, at: Millis) -> SyncRunFinish {
    SyncRunFinish {
        status,
        complete: true,
        counts: json!({"status": status.as_str()}),
        report: json!({}),
        now: at,
    }
}

/// Start a run and finish it at once with `status`; its id.
async fn run_to(s: &Arc<dyn Store>, flow: &str, status: SyncRunStatus, at: Millis) -> i64 {
    let (run, _) = s
        .start_sync_run(&new_run(flow, "full", None, at))
        .await
        .unwrap();
    s.finish_sync_run(run.id, &finish(status, at + 1))
        .await
        .unwrap();
    run.id
}

#[tokio::test]
async fn sync_run_starts_resumes_and_finishes() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let job = s
            .enqueue(&NewJob::new("org_sync.run", json!({}), T0).flow("org_sync"))
            .await
            .unwrap()
            .id;

        let (run, resumed) = s
            .start_sync_run(&new_run("org_sync", "full", Some(job), T0))
            .await
            .unwrap();
        assert!(!resumed, "{n}");
        assert_eq!(run.flow, "org_sync", "{n}");
        assert_eq!(run.mode, "full", "{n}");
        assert_eq!(run.job_id, Some(job), "{n}");
        assert_eq!(run.status, SyncRunStatus::Running, "{n}");
        assert_eq!(run.attempts, 1, "{n}");
        assert_eq!(run.complete, None, "{n}");
        assert_eq!(run.started_at, T0, "{n}");
        assert_eq!(run.updated_at, T0, "{n}");
        assert_eq!(run.finished_at, None, "{n}");
        assert_eq!(s.get_sync_run(run.id).await.unwrap().as_ref(), Some(&run));

        s.update_sync_run(run.id, &json!({"users": 40}), T0 + 5)
            .await
            .unwrap();
        // The process died; the job is claimed again and starts its run again: resumed.
        let (again, resumed) = s
            .start_sync_run(&new_run("org_sync", "full", Some(job), T0 + 10))
            .await
            .unwrap();
        assert!(resumed, "{n}");
        assert_eq!(again.id, run.id, "{n}");
        assert_eq!(again.attempts, 2, "{n}");
        assert_eq!(again.status, SyncRunStatus::Running, "{n}");
        assert_eq!(again.started_at, T0, "{n}: a resumed run keeps its start");
        assert_eq!(again.updated_at, T0 + 10, "{n}");
        assert_eq!(again.counts, json!({"users": 40}), "{n}: progress is kept");

        // Runs of another job, or of no job, are runs of their own.
        let (other, resumed) = s
            .start_sync_run(&new_run(
                "org_sync",
                "reconcile",
                Some(JobId(job.0 + 1000)),
                T0,
            ))
            .await
            .unwrap();
        assert!(!resumed, "{n}");
        assert_ne!(other.id, run.id, "{n}");
        let (a, ra) = s
            .start_sync_run(&new_run("org_sync", "dry_run", None, T0))
            .await
            .unwrap();
        let (b, rb) = s
            .start_sync_run(&new_run("org_sync", "dry_run", None, T0))
            .await
            .unwrap();
        assert!(!ra && !rb, "{n}");
        assert_ne!(a.id, b.id, "{n}");
        assert_eq!(b.attempts, 1, "{n}");

        s.finish_sync_run(
            run.id,
            &SyncRunFinish {
                status: SyncRunStatus::Success,
                complete: true,
                counts: json!({"users": 80}),
                report: json!({"errors": []}),
                now: T0 + 60_000,
            },
        )
        .await
        .unwrap();
        let done = s.get_sync_run(run.id).await.unwrap().unwrap();
        assert_eq!(done.status, SyncRunStatus::Success, "{n}");
        assert_eq!(done.complete, Some(true), "{n}");
        assert_eq!(done.counts, json!({"users": 80}), "{n}");
        assert_eq!(done.report, json!({"errors": []}), "{n}");
        assert_eq!(done.finished_at, Some(T0 + 60_000), "{n}");
        assert_eq!(done.updated_at, T0 + 60_000, "{n}");
        assert_eq!(done.attempts, 2, "{n}");
        assert_eq!(done.duration_ms(), 60_000, "{n}");

        // The job's run is over: the same job starting again makes a new run.
        let (fresh, resumed) = s
            .start_sync_run(&new_run("org_sync", "full", Some(job), T0 + 70_000))
            .await
            .unwrap();
        assert!(!resumed, "{n}");
        assert_ne!(fresh.id, run.id, "{n}");
        assert_eq!(fresh.attempts, 1, "{n}");
        assert_eq!(fresh.counts, json!({}), "{n}");
        // A finished run with `complete: false` is stored as such.
        s.finish_sync_run(
            fresh.id,
            &SyncRunFinish {
                complete: false,
                ..finish(SyncRunStatus::Failed, T0 + 80_000)
            },
        )
        .await
        .unwrap();
        let failed = s.get_sync_run(fresh.id).await.unwrap().unwrap();
        assert_eq!(failed.complete, Some(false), "{n}");
        assert_eq!(failed.status, SyncRunStatus::Failed, "{n}");
        assert!(s.get_sync_run(fresh.id + 1000).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn concurrent_starts_of_one_job_share_one_run() {
    for ts in test_stores().await {
        let n = ts.name;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = Arc::clone(&ts.store);
            tasks.push(tokio::spawn(async move {
                s.start_sync_run(&new_run("org_sync", "full", Some(JobId(7)), T0 + i))
                    .await
                    .unwrap()
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap());
        }
        let id = starts[0].0.id;
        assert!(starts.iter().all(|(r, _)| r.id == id), "{n}: {starts:?}");
        assert_eq!(
            starts.iter().filter(|(_, resumed)| !resumed).count(),
            1,
            "{n}"
        );
        let mut attempts: Vec<i32> = starts.iter().map(|(r, _)| r.attempts).collect();
        attempts.sort_unstable();
        assert_eq!(attempts, (1..=8).collect::<Vec<_>>(), "{n}");
        assert_eq!(
            ts.store.list_sync_runs(None, 0).await.unwrap().len(),
            1,
            "{n}"
        );
    }
}

#[tokio::test]
async fn finished_runs_refuse_updates_and_a_second_finish() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let (run, _) = s
            .start_sync_run(&new_run("org_sync", "full", None, T0))
            .await
            .unwrap();
        // A run cannot "finish" as running.
        assert!(
            matches!(
                s.finish_sync_run(run.id, &finish(SyncRunStatus::Running, T0 + 1))
                    .await,
                Err(StoreError::InvalidState(_))
            ),
            "{n}"
        );
        s.finish_sync_run(
            run.id,
            &SyncRunFinish {
                report: json!({"first": true}),
                ..finish(SyncRunStatus::Partial, T0 + 2)
            },
        )
        .await
        .unwrap();
        let err = s
            .update_sync_run(run.id, &json!({"users": 1}), T0 + 3)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidState(_)), "{n}: {err}");
        let err = s
            .finish_sync_run(
                run.id,
                &SyncRunFinish {
                    report: json!({"second": true}),
                    ..finish(SyncRunStatus::Success, T0 + 4)
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidState(_)), "{n}: {err}");
        // Neither refused call changed the run.
        let stored = s.get_sync_run(run.id).await.unwrap().unwrap();
        assert_eq!(stored.status, SyncRunStatus::Partial, "{n}");
        assert_eq!(stored.report, json!({"first": true}), "{n}");
        assert_eq!(stored.counts, json!({"status": "partial"}), "{n}");
        assert_eq!(stored.finished_at, Some(T0 + 2), "{n}");
        assert_eq!(stored.updated_at, T0 + 2, "{n}");
        // Unknown runs are not found.
        let missing = run.id + 1000;
        assert!(
            matches!(
                s.update_sync_run(missing, &json!({}), T0).await,
                Err(StoreError::NotFound(_))
            ),
            "{n}"
        );
        assert!(
            matches!(
                s.finish_sync_run(missing, &finish(SyncRunStatus::Success, T0))
                    .await,
                Err(StoreError::NotFound(_))
            ),
            "{n}"
        );
    }
}

#[tokio::test]
async fn last_success_moves_only_on_success() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        assert!(s.last_successful_sync_run("org").await.unwrap().is_none());
        let first = run_to(s, "org", SyncRunStatus::Success, T0).await;
        run_to(s, "org", SyncRunStatus::Partial, T0 + 10).await;
        run_to(s, "org", SyncRunStatus::Failed, T0 + 20).await;
        // Another flow's success is not this flow's.
        let elsewhere = run_to(s, "other", SyncRunStatus::Success, T0 + 30).await;
        // A run still going is not a success either.
        s.start_sync_run(&new_run("org", "full", None, T0 + 40))
            .await
            .unwrap();
        let last = s.last_successful_sync_run("org").await.unwrap().unwrap();
        assert_eq!(last.id, first, "{n}");
        assert_eq!(last.status, SyncRunStatus::Success, "{n}");
        assert_eq!(last.finished_at, Some(T0 + 1), "{n}");

        let second = run_to(s, "org", SyncRunStatus::Success, T0 + 50).await;
        run_to(s, "org", SyncRunStatus::Failed, T0 + 60).await;
        let last = s.last_successful_sync_run("org").await.unwrap().unwrap();
        assert_eq!(last.id, second, "{n}");
        assert_eq!(last.finished_at, Some(T0 + 51), "{n}");
        let other = s.last_successful_sync_run("other").await.unwrap().unwrap();
        assert_eq!(other.id, elsewhere, "{n}");
        assert!(s.last_successful_sync_run("none").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn runs_list_most_recent_first_by_flow() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let mut org = Vec::new();
        let mut hr = Vec::new();
        for i in 0..5 {
            org.push(run_to(s, "org", SyncRunStatus::Success, T0 + i * 10).await);
            hr.push(run_to(s, "人事", SyncRunStatus::Failed, T0 + i * 10 + 5).await);
        }
        let ids = |runs: Vec<SyncRun>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let mut all: Vec<i64> = org.iter().chain(&hr).copied().collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(ids(s.list_sync_runs(None, 0).await.unwrap()), all, "{n}");
        org.reverse();
        hr.reverse();
        assert_eq!(
            ids(s.list_sync_runs(Some("org"), 0).await.unwrap()),
            org,
            "{n}"
        );
        assert_eq!(
            ids(s.list_sync_runs(Some("人事"), 0).await.unwrap()),
            hr,
            "{n}"
        );
        assert_eq!(
            ids(s.list_sync_runs(Some("org"), 2).await.unwrap()),
            org[..2].to_vec(),
            "{n}"
        );
        assert_eq!(
            ids(s.list_sync_runs(None, 3).await.unwrap()),
            all[..3].to_vec()
        );
        assert!(s.list_sync_runs(Some("none"), 0).await.unwrap().is_empty());
        // 0 means the default page of 100.
        for i in 0..100 {
            s.start_sync_run(&new_run("many", "full", None, T0 + i))
                .await
                .unwrap();
        }
        assert_eq!(s.list_sync_runs(None, 0).await.unwrap().len(), 100, "{n}");
        assert_eq!(s.list_sync_runs(None, 200).await.unwrap().len(), 110, "{n}");
    }
}

#[tokio::test]
async fn run_counts_and_report_round_trip_chinese_json() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let (run, _) = s
            .start_sync_run(&new_run("组织同步", "reconcile", None, T0))
            .await
            .unwrap();
        let progress = json!({"部门": 33, "人员": {"新增": 5, "停用": 1}});
        s.update_sync_run(run.id, &progress, T0 + 1).await.unwrap();
        let got = s.get_sync_run(run.id).await.unwrap().unwrap();
        assert_eq!(got.counts, progress, "{n}");
        assert_eq!(got.updated_at, T0 + 1, "{n}");
        assert_eq!(got.status, SyncRunStatus::Running, "{n}");

        let counts = json!({"部门": 33, "人员": {"新增": 6, "停用": 1}, "耗时秒": 1.5});
        let report = json!({
            "错误": [{"记录": "user:E0001", "原因": "工号重复：张伟 与 张伟（二）"}],
            "说明": "部分成功 — 1 条进入死信",
            "空": null,
        });
        s.finish_sync_run(
            run.id,
            &SyncRunFinish {
                status: SyncRunStatus::Partial,
                complete: true,
                counts: counts.clone(),
                report: report.clone(),
                now: T0 + 2,
            },
        )
        .await
        .unwrap();
        let got = s.get_sync_run(run.id).await.unwrap().unwrap();
        assert_eq!(got.flow, "组织同步", "{n}");
        assert_eq!(got.mode, "reconcile", "{n}");
        assert_eq!(got.counts, counts, "{n}");
        assert_eq!(got.report, report, "{n}");
        assert_eq!(got.counts["部门"], 33, "{n}");
        let listed = s.list_sync_runs(Some("组织同步"), 0).await.unwrap();
        assert_eq!(listed, vec![got.clone()], "{n}");
        // The serialised run carries the status as a lowercase word.
        let v: Value = serde_json::to_value(&got).unwrap();
        assert_eq!(v["status"], "partial", "{n}");
        assert_eq!(v["counts"]["人员"]["新增"], 6, "{n}");
    }
}

fn link(flow: &str, source_key: &str, target_key: Option<&str>) -> Link {
    Link {
        flow: flow.into(),
        source_key: source_key.into(),
        target_key: target_key.map(Into::into),
        step: "saved".into(),
        payload_hash: None,
        updated_at: T0,
    }
}

/// Every link of `flow` under `prefix`, page by page; the page sizes seen.
async fn walk(
    s: &Arc<dyn Store>,
    flow: &str,
    prefix: &str,
    limit: i64,
) -> (Vec<String>, Vec<usize>) {
    let mut keys = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list_links(flow, prefix, after.as_deref(), limit)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        pages.push(page.len());
        assert!(page.iter().all(|l| l.flow == flow));
        after = page.last().map(|l| l.source_key.clone());
        keys.extend(page.into_iter().map(|l| l.source_key));
        assert!(pages.len() < 100, "paging does not advance");
    }
    (keys, pages)
}

#[tokio::test]
async fn links_page_by_prefix_in_key_order() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let mut users: Vec<String> = (0..150)
            .map(|i| format!("user:{:04}", i * 7 % 150))
            .collect();
        users.push("user:张伟".into());
        let mut depts: Vec<String> = (0..96).map(|i| format!("dept:{i}")).collect();
        // Keys that a LIKE pattern would confuse with others.
        depts.extend(["dept:50%_off", "dept:50%", "dept:50_a", "dept:研发部"].map(String::from));
        // Near misses of the prefixes: not theirs.
        let others = ["user", "user_1", "userX:1", "User:1", "dept", "dep:1", ""].map(String::from);

        let mut tx = s.begin().await.unwrap();
        for key in users.iter().chain(&depts).chain(&others) {
            tx.upsert_link(&link("org", key, Some(&format!("K-{key}"))))
                .await
                .unwrap();
        }
        // Another flow with the same keys stays out of every page.
        for key in users.iter().take(20).chain(depts.iter().take(20)) {
            tx.upsert_link(&link("hr", key, None)).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(users.len() + depts.len(), 251, "{n}");

        // Keys come in byte order (what Rust's sort gives), whole pages until the last.
        users.sort();
        depts.sort();
        let (got, pages) = walk(s, "org", "user:", 100).await;
        assert_eq!(got, users, "{n}");
        assert_eq!(pages, vec![100, 51], "{n}");
        let (got, pages) = walk(s, "org", "dept:", 30).await;
        assert_eq!(got, depts, "{n}");
        assert_eq!(pages, vec![30, 30, 30, 10], "{n}");
        // Limit 0 is the default page of 100.
        let (got, pages) = walk(s, "org", "user:", 0).await;
        assert_eq!(got, users, "{n}");
        assert_eq!(pages, vec![100, 51], "{n}");
        // The empty prefix walks the whole flow, the near misses too.
        let mut everything: Vec<String> =
            users.iter().chain(&depts).chain(&others).cloned().collect();
        everything.sort();
        let (got, _) = walk(s, "org", "", 64).await;
        assert_eq!(got, everything, "{n}");

        // `%` and `_` in a prefix are plain characters.
        let keys = |links: Vec<Link>| links.into_iter().map(|l| l.source_key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list_links("org", "dept:50%", None, 0).await.unwrap()),
            vec!["dept:50%", "dept:50%_off"],
            "{n}"
        );
        assert_eq!(
            keys(s.list_links("org", "dept:50%_", None, 0).await.unwrap()),
            vec!["dept:50%_off"],
            "{n}"
        );
        assert_eq!(
            keys(s.list_links("org", "dept:50_", None, 0).await.unwrap()),
            vec!["dept:50_a"],
            "{n}"
        );
        assert_eq!(
            keys(s.list_links("org", "user_", None, 0).await.unwrap()),
            vec!["user_1"],
            "{n}"
        );
        assert!(s.list_links("org", "%", None, 0).await.unwrap().is_empty());
        assert!(
            s.list_links("org", "_ser:", None, 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.list_links("none", "user:", None, 0)
                .await
                .unwrap()
                .is_empty()
        );

        // `after` is exclusive; before the prefix it starts at the prefix, past it nothing.
        let page = keys(
            s.list_links("org", "user:", Some("user:0009"), 3)
                .await
                .unwrap(),
        );
        assert_eq!(page, vec!["user:0010", "user:0011", "user:0012"], "{n}");
        let page = keys(s.list_links("org", "user:", Some("a"), 2).await.unwrap());
        assert_eq!(page, vec!["user:0000", "user:0001"], "{n}");
        assert!(
            s.list_links("org", "dept:", Some("user:"), 0)
                .await
                .unwrap()
                .is_empty()
        );
        // Pages carry whole links.
        let one = s.list_links("org", "dept:研发", None, 0).await.unwrap();
        assert_eq!(
            one,
            vec![link("org", "dept:研发部", Some("K-dept:研发部"))],
            "{n}"
        );
    }
}

#[tokio::test]
async fn links_are_found_by_target() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let mut tx = s.begin().await.unwrap();
        tx.upsert_link(&link("org", "user:b", Some("K-001")))
            .await
            .unwrap();
        tx.upsert_link(&link("org", "user:a", Some("K-001")))
            .await
            .unwrap();
        tx.upsert_link(&link("org", "user:c", Some("K-002")))
            .await
            .unwrap();
        tx.upsert_link(&link("org", "user:d", None)).await.unwrap();
        tx.upsert_link(&link("hr", "user:z", Some("K-001")))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let two = s.find_links_by_target("org", "K-001").await.unwrap();
        let keys: Vec<&str> = two.iter().map(|l| l.source_key.as_str()).collect();
        assert_eq!(keys, vec!["user:a", "user:b"], "{n}");
        assert!(
            two.iter()
                .all(|l| l.flow == "org" && l.target_key.as_deref() == Some("K-001"))
        );
        let one = s.find_links_by_target("org", "K-002").await.unwrap();
        assert_eq!(one, vec![link("org", "user:c", Some("K-002"))], "{n}");
        assert_eq!(
            s.find_links_by_target("hr", "K-001").await.unwrap().len(),
            1,
            "{n}"
        );
        assert!(
            s.find_links_by_target("org", "K-404")
                .await
                .unwrap()
                .is_empty()
        );

        // Re-pointing a source moves it to its new target.
        let mut tx = s.begin().await.unwrap();
        tx.upsert_link(&link("org", "user:b", Some("K-002")))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            s.find_links_by_target("org", "K-001").await.unwrap().len(),
            1,
            "{n}"
        );
        assert_eq!(
            s.find_links_by_target("org", "K-002").await.unwrap().len(),
            2,
            "{n}"
        );
    }
}

#[tokio::test]
async fn dead_letters_written_directly_can_be_replayed() {
    for ts in test_stores().await {
        let s = &ts.store;
        let n = ts.name;
        let bad = NewJob::new(
            "org_sync.user",
            json!({"userid": "E0001", "姓名": "张伟"}),
            T0,
        )
        .flow("org_sync")
        .queue("org")
        .priority(3)
        .idempotency_key("org_sync:user:E0001");
        let why = "工号重复: E0001 已属于 张伟（二）";

        // One transaction: the bad record goes to the dead letters, the rest proceeds.
        let mut tx = s.begin().await.unwrap();
        let dead = tx.insert_dead_letter(&bad, why).await.unwrap();
        let good = tx
            .enqueue(&NewJob::new("org_sync.user", json!({"userid": "E0002"}), T0).flow("org_sync"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(dead.created, "{n}");

        let job = s.get_job(dead.id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Dead, "{n}");
        assert_eq!(job.last_error.as_deref(), Some(why), "{n}");
        assert_eq!(job.error_class, Some(ErrorClass::Permanent), "{n}");
        assert_eq!(job.attempts, 0, "{n}");
        assert_eq!(job.finished_at, Some(T0), "{n}");
        assert_eq!(job.created_at, T0, "{n}");
        assert_eq!(job.payload, bad.payload, "{n}");
        assert_eq!(job.queue, "org", "{n}");
        assert_eq!(job.priority, 3, "{n}");
        assert_eq!(job.flow.as_deref(), Some("org_sync"), "{n}");
        assert_eq!(
            job.idempotency_key.as_deref(),
            Some("org_sync:user:E0001"),
            "{n}"
        );
        assert_eq!(job.lease_owner, None, "{n}");

        let dead_letters = s
            .list_jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(dead_letters, vec![job.clone()], "{n}");
        assert!(
            s.queue_depths().await.unwrap().contains(&QueueDepth {
                queue: "org".into(),
                status: JobStatus::Dead,
                count: 1,
            }),
            "{n}"
        );
        // Workers never claim a dead letter.
        let req = ClaimRequest {
            worker: "w1".into(),
            queues: vec![],
            limit: 10,
            lease_ms: 30_000,
            now: T0 + 1,
        };
        let claimed = s.claim_jobs(&req).await.unwrap();
        assert_eq!(
            claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![good.id],
            "{n}"
        );

        // The same key again: nothing new, the existing job.
        let mut tx = s.begin().await.unwrap();
        let again = tx.insert_dead_letter(&bad, "another reason").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            again,
            Enqueued {
                id: dead.id,
                created: false
            },
            "{n}"
        );
        assert_eq!(s.get_job(dead.id).await.unwrap().unwrap(), job, "{n}");
        assert!(!s.enqueue(&bad).await.unwrap().created, "{n}");

        // Replay brings it back to the queue; it then runs like any job.
        s.replay_job(dead.id, T0 + 10).await.unwrap();
        let replayed = s.get_job(dead.id).await.unwrap().unwrap();
        assert_eq!(replayed.status, JobStatus::Queued, "{n}");
        assert_eq!(replayed.attempts, 0, "{n}");
        assert_eq!(replayed.finished_at, None, "{n}");
        let claimed = s
            .claim_jobs(&ClaimRequest {
                now: T0 + 10,
                ..req.clone()
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{n}");
        assert_eq!(claimed[0].id, dead.id, "{n}");
        assert_eq!(claimed[0].attempts, 1, "{n}");
        // A replayed key still yields the existing job, whatever its status.
        let mut tx = s.begin().await.unwrap();
        let third = tx.insert_dead_letter(&bad, why).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            third,
            Enqueued {
                id: dead.id,
                created: false
            },
            "{n}"
        );
        assert_eq!(
            s.get_job(dead.id).await.unwrap().unwrap().status,
            JobStatus::Running,
            "{n}"
        );

        // Without a key every dead letter is its own; a rolled-back one is not kept.
        let keyless = NewJob::new("org_sync.dept", json!({"dept_id": 9}), T0 + 20);
        let mut tx = s.begin().await.unwrap();
        let x = tx
            .insert_dead_letter(&keyless, "上级部门不存在")
            .await
            .unwrap();
        let y = tx
            .insert_dead_letter(&keyless, "上级部门不存在")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(x.created && y.created && x.id != y.id, "{n}");
        let mut tx = s.begin().await.unwrap();
        let gone = tx
            .insert_dead_letter(&keyless, "rolled back")
            .await
            .unwrap();
        drop(tx);
        assert!(s.get_job(gone.id).await.unwrap().is_none(), "{n}");
        let dead_now = s
            .list_jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            dead_now.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![y.id, x.id],
            "{n}"
        );
    }
}
