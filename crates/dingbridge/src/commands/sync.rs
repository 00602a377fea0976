//! `sync run <flow> [--dry-run] [--mode full|reconcile]`: an org sync now, in the foreground,
//! with a progress bar (pages, departments, users, writes, errors) and a summary; the run is
//! stored like every scheduled one. `sync runs [flow]`: the stored runs.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use engine::config::{Config, Lang};
use engine::orgsync::{Progress, ProgressSnapshot, RunSummary, SyncMode, build_syncs};
use store::{Store, SyncRunStatus};

use super::{input_error, runtime_error};
use crate::Failure;
use crate::cli::{SyncCommand, SyncModeArg};
use crate::messages::Msg;

pub async fn sync(
    cfg: &Config,
    store: Arc<dyn Store>,
    command: SyncCommand,
    lang: Lang,
) -> Result<(), Failure> {
    match command {
        SyncCommand::Run {
            flow,
            dry_run,
            mode,
            json,
        } => {
            let mode = match (dry_run, mode) {
                (true, _) => SyncMode::DryRun,
                (false, SyncModeArg::Full) => SyncMode::Full,
                (false, SyncModeArg::Reconcile) => SyncMode::Reconcile,
            };
            run(cfg, store, &flow, mode, json, lang).await
        }
        SyncCommand::Runs { flow, limit, json } => {
            let runs = store
                .list_sync_runs(flow.as_deref(), limit)
                .await
                .map_err(|e| runtime_error(lang, &e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).unwrap_or_default()
                );
                return Ok(());
            }
            if runs.is_empty() {
                println!("{}", Msg::NoRuns.text(lang));
            }
            for r in runs {
                let secs = r
                    .finished_at
                    .map_or(0.0, |f| (f - r.started_at) as f64 / 1000.0);
                println!(
                    "#{:<5} {:<16} {:<9} {:<8} {:>8.1}s  complete={}  {}",
                    r.id,
                    r.flow,
                    r.mode,
                    r.status.as_str(),
                    secs,
                    r.complete.map_or("-".to_owned(), |c| c.to_string()),
                    r.counts
                );
            }
            Ok(())
        }
    }
}

async fn run(
    cfg: &Config,
    store: Arc<dyn Store>,
    flow: &str,
    mode: SyncMode,
    json: bool,
    lang: Lang,
) -> Result<(), Failure> {
    store
        .migrate()
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    let limiters = cfg
        .limiter_registry()
        .map_err(|e| Failure::input(e.to_string()))?;
    let syncs = build_syncs(cfg, Arc::clone(&store), &limiters)
        .await
        .map_err(|e| input_error(lang, &e.to_string()))?;
    let Some(sync) = syncs.get(flow) else {
        let mut names: Vec<&str> = syncs.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(Failure::input(
            Msg::SyncNotAFlow {
                flow,
                available: &if names.is_empty() {
                    "-".to_owned()
                } else {
                    names.join(", ")
                },
            }
            .text(lang),
        ));
    };
    eprintln!(
        "{}",
        Msg::SyncStarting {
            flow,
            mode: mode.as_str()
        }
        .text(lang)
    );
    let progress = Progress::new();
    let drawer = tokio::spawn(draw(progress.clone(), lang));
    let result = sync.run(mode, None, &progress).await;
    drawer.abort();
    let _ = drawer.await;
    let summary = result.map_err(|e| runtime_error(lang, &e.to_string()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run_id": summary.run_id,
                "status": summary.status,
                "counts": summary.counts,
                "report": summary.report,
                "seconds": summary.duration.as_secs_f64(),
            }))
            .unwrap_or_default()
        );
    } else {
        print_summary(flow, &summary, lang);
    }
    match summary.status {
        SyncRunStatus::Success => Ok(()),
        _ => Err(Failure::runtime(Msg::SyncPartial { flow }.text(lang))),
    }
}

fn line(s: &ProgressSnapshot, lang: Lang) -> String {
    Msg::SyncProgress {
        pages: s.pages,
        departments: s.departments,
        users: s.users,
        writes: s.writes(),
        errors: s.failed,
    }
    .text(lang)
}

/// A spinner with the counters on a terminal; a plain line every 5 s otherwise (logs, CI).
async fn draw(progress: Progress, lang: Lang) {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        loop {
            bar.set_message(line(&progress.snapshot(), lang));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            eprintln!("{}", line(&progress.snapshot(), lang));
        }
    }
}

fn print_summary(flow: &str, s: &RunSummary, lang: Lang) {
    let c = &s.counts;
    println!(
        "{}",
        Msg::SyncFinished {
            flow,
            status: s.status.as_str(),
            seconds: s.duration.as_secs_f64(),
            resumed: s.resumed,
        }
        .text(lang)
    );
    println!(
        "{}",
        Msg::SyncCounts {
            departments: c.departments,
            users: c.users,
            created: c.created,
            updated: c.updated,
            unchanged: c.unchanged,
            disabled: c.disabled,
            failed: c.failed,
            conflicts: c.conflicts,
        }
        .text(lang)
    );
    let r = &s.report;
    if !r.complete {
        println!(
            "{}",
            Msg::SyncIncomplete {
                gaps: r.gaps_total,
                withheld: r.withheld_disables
            }
            .text(lang)
        );
        for g in r.gaps.iter().take(10) {
            println!(
                "{}",
                Msg::SyncGap {
                    scope: &g.scope,
                    reason: &g.reason
                }
                .text(lang)
            );
        }
    }
    for (entity, plan) in [("department", &r.departments), ("user", &r.users)] {
        let Some(p) = plan else { continue };
        println!(
            "{}",
            Msg::SyncPlan {
                entity,
                create: p.create,
                update: p.update,
                disable: p.disable,
                unchanged: p.unchanged,
                unmanaged: p.unmanaged,
            }
            .text(lang)
        );
        for k in p.sample_create.iter().take(10) {
            println!(
                "{}",
                Msg::SyncPlanItem {
                    action: "create",
                    detail: k
                }
                .text(lang)
            );
        }
        for (k, fields) in p.sample_update.iter().take(10) {
            let detail = format!("{k} [{}]", fields.join(", "));
            println!(
                "{}",
                Msg::SyncPlanItem {
                    action: "update",
                    detail: &detail
                }
                .text(lang)
            );
        }
        for k in p.sample_disable.iter().take(10) {
            println!(
                "{}",
                Msg::SyncPlanItem {
                    action: "disable",
                    detail: k
                }
                .text(lang)
            );
        }
    }
    for x in r.rejected.iter().take(10) {
        println!(
            "{}",
            Msg::SyncRejected {
                entity: x.entity.as_str(),
                id: &x.source_key,
                reason: &x.reason
            }
            .text(lang)
        );
    }
    for x in r.conflicts.iter().take(10) {
        println!(
            "{}",
            Msg::SyncConflict {
                key: &x.key,
                reason: &x.reason
            }
            .text(lang)
        );
    }
}
