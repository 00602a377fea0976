//! `demo`: a node on an embedded SQLite store with `examples/dingbridge.toml`, plus a batch of
//! jobs that shows the queue at work: most finish, one retries once, one becomes a dead letter.
//! (Later issues add the DingTalk and Kingdee sandboxes and their flows.)

use std::path::Path;
use std::time::Duration;

use engine::config::{Config, Lang};
use serde_json::json;
use store::{JobStatus, NewJob};

use super::runtime_error;
use crate::Failure;
use crate::messages::Msg;

const EXAMPLE: &str = include_str!("../../../../examples/dingbridge.toml");

/// Approval-like titles, so the transfer log reads like real work.
const TITLES: [&str; 6] = [
    "费用报销 · 张伟 · 差旅费",
    "请假 · 李娜 · 年假 3 天",
    "采购申请 · 王芳 · 笔记本电脑",
    "费用报销 · 刘洋 · 招待费",
    "入职 · 陈静 · 研发中心/平台研发部",
    "离职 · 赵磊 · 销售中心/华东大区",
];

pub async fn demo(
    listen: &str,
    data_dir: &Path,
    seconds: Option<u64>,
    lang: Lang,
) -> Result<(), Failure> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| runtime_error(lang, &format!("cannot create {}: {e}", data_dir.display())))?;
    // The example with the store moved into the data dir, written out so that `jobs` and
    // `dlq` can be pointed at the demo's store with `-c <data-dir>/dingbridge.toml`.
    let url = format!("sqlite://{}", data_dir.join("demo.sqlite").display());
    let text = EXAMPLE.replace(
        "url = \"sqlite://dingbridge.sqlite\"",
        &format!("url = \"{url}\""),
    );
    let config_path = data_dir.join("dingbridge.toml");
    std::fs::write(&config_path, &text).map_err(|e| {
        runtime_error(
            lang,
            &format!("cannot write {}: {e}", config_path.display()),
        )
    })?;
    let cfg = Config::from_str(&text, &config_path.display().to_string())
        .map_err(|e| Failure::input(e.render(lang)))?;
    println!(
        "{}",
        Msg::DemoIntro {
            dir: &data_dir.display().to_string()
        }
        .text(lang)
    );
    let ready = Box::new(
        move |store: std::sync::Arc<dyn store::Store>,
              shutdown: tokio_util::sync::CancellationToken| {
            tokio::spawn(async move {
                let now = engine::clock::now_ms();
                let run = now / 1000; // one batch per demo start
                let mut count = 0;
                for (n, title) in TITLES.iter().cycle().take(24).enumerate() {
                    let mut payload =
                        json!({ "key": format!("demo-{run}-{n}"), "title": title, "sleep_ms": 50 });
                    if n == 7 {
                        payload["fail_attempts"] = json!(1);
                    }
                    if n == 13 {
                        payload["permanent"] = json!(true);
                    }
                    let job = NewJob::new("selftest", payload, now)
                        .flow("demo")
                        .idempotency_key(format!("demo-{run}-{n}"));
                    if store.enqueue(&job).await.is_ok() {
                        count += 1;
                    }
                }
                println!("{}", Msg::DemoEnqueued { count }.text(lang));
                let deadline =
                    seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
                let mut last = String::new();
                while !shutdown.is_cancelled() {
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        shutdown.cancel();
                        break;
                    }
                    if let Ok(depths) = store.queue_depths().await {
                        let n = |st: JobStatus| {
                            depths
                                .iter()
                                .filter(|d| d.status == st)
                                .map(|d| d.count)
                                .sum::<i64>()
                        };
                        let line = Msg::Progress {
                            queued: n(JobStatus::Queued) + n(JobStatus::Running),
                            retry: n(JobStatus::Retry),
                            done: n(JobStatus::Done),
                            dead: n(JobStatus::Dead),
                        }
                        .text(lang);
                        if line != last {
                            println!("{line}");
                            last = line;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        },
    );
    super::serve::serve(cfg, Some(listen.to_owned()), lang, Some(ready)).await
}
