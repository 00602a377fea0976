//! `jobs` and `dlq`: look at the queue and act on dead letters.

use engine::config::Lang;
use store::{Job, JobFilter, JobId, JobStatus, Store, StoreError};

use super::runtime_error;
use crate::Failure;
use crate::cli::{DlqCommand, JobsCommand};
use crate::messages::Msg;

pub async fn jobs(store: &dyn Store, cmd: JobsCommand, lang: Lang) -> Result<(), Failure> {
    match cmd {
        JobsCommand::List {
            status,
            queue,
            flow,
            limit,
            json,
        } => {
            let status = status
                .map(|s| s.parse::<JobStatus>())
                .transpose()
                .map_err(|e| Failure::input(format!("--status: {e}")))?;
            let filter = JobFilter {
                status,
                queue,
                flow,
                limit,
                ..JobFilter::default()
            };
            list(store, &filter, json, lang).await
        }
        JobsCommand::Show { id } => show(store, id, lang).await,
    }
}

pub async fn dlq(store: &dyn Store, cmd: DlqCommand, lang: Lang) -> Result<(), Failure> {
    let now = engine::clock::now_ms();
    match cmd {
        DlqCommand::List { limit, json } => {
            let filter = JobFilter {
                status: Some(JobStatus::Dead),
                limit,
                ..JobFilter::default()
            };
            list(store, &filter, json, lang).await
        }
        DlqCommand::Show { id } => show(store, id, lang).await,
        DlqCommand::Replay { ids } => {
            for id in ids {
                store
                    .replay_job(JobId(id), now)
                    .await
                    .map_err(|e| store_failure(e, id, lang))?;
                println!("{}", Msg::Replayed { id }.text(lang));
            }
            Ok(())
        }
        DlqCommand::Discard { ids } => {
            for id in ids {
                store
                    .discard_job(JobId(id), now)
                    .await
                    .map_err(|e| store_failure(e, id, lang))?;
                println!("{}", Msg::Discarded { id }.text(lang));
            }
            Ok(())
        }
    }
}

fn store_failure(e: StoreError, id: i64, lang: Lang) -> Failure {
    match e {
        StoreError::NotFound(_) => Failure::input(Msg::NotFound { id }.text(lang)),
        StoreError::InvalidState(m) => Failure::input(Msg::Error { detail: &m }.text(lang)),
        other => runtime_error(lang, &other.to_string()),
    }
}

async fn list(
    store: &dyn Store,
    filter: &JobFilter,
    json: bool,
    lang: Lang,
) -> Result<(), Failure> {
    let jobs = store
        .list_jobs(filter)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    if json {
        let text =
            serde_json::to_string_pretty(&jobs).map_err(|e| runtime_error(lang, &e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    if jobs.is_empty() {
        println!("{}", Msg::NoJobs.text(lang));
        return Ok(());
    }
    let header = if lang == Lang::Zh {
        [
            "编号",
            "状态",
            "队列",
            "类型",
            "流程",
            "尝试",
            "下次运行",
            "最近错误",
        ]
    } else {
        [
            "ID",
            "STATUS",
            "QUEUE",
            "KIND",
            "FLOW",
            "TRIES",
            "RUN AT",
            "LAST ERROR",
        ]
    };
    println!("{}", header.join("\t"));
    for j in &jobs {
        println!("{}", row(j).join("\t"));
    }
    Ok(())
}

fn row(j: &Job) -> [String; 8] {
    [
        j.id.to_string(),
        j.status.to_string(),
        j.queue.clone(),
        j.kind.clone(),
        j.flow.clone().unwrap_or_else(|| "-".into()),
        format!("{}/{}", j.attempts, j.max_attempts),
        local_time(j.run_at),
        j.last_error
            .as_deref()
            .map(|e| e.chars().take(60).collect())
            .unwrap_or_else(|| "-".into()),
    ]
}

fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

async fn show(store: &dyn Store, id: i64, lang: Lang) -> Result<(), Failure> {
    let job = store
        .get_job(JobId(id))
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?
        .ok_or_else(|| Failure::input(Msg::NotFound { id }.text(lang)))?;
    let text =
        serde_json::to_string_pretty(&job).map_err(|e| runtime_error(lang, &e.to_string()))?;
    println!("{text}");
    Ok(())
}
