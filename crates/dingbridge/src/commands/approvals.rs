//! `approvals list | show`: the approvals in-house systems started through the approval bridge,
//! with their DingTalk tasks and webhook messages. Also the table printing the `keys`,
//! `approvals` and `webhooks` commands share: columns padded by display width, so Chinese text
//! (two columns a character) lines up.

use engine::config::Lang;
use serde_json::Value;
use store::{Approval, ApprovalFilter, ApprovalStatus, Store, WebhookMessage};

use super::runtime_error;
use crate::Failure;
use crate::cli::{ApprovalStatusArg, ApprovalsCommand};
use crate::messages::{Label, Msg, Table};

pub async fn approvals(
    store: &dyn Store,
    cmd: ApprovalsCommand,
    lang: Lang,
) -> Result<(), Failure> {
    match cmd {
        ApprovalsCommand::List {
            status,
            flow,
            business_key,
            limit,
            json,
        } => {
            let filter = ApprovalFilter {
                status: status.map(|s| match s {
                    ApprovalStatusArg::Pending => ApprovalStatus::Pending,
                    ApprovalStatusArg::Running => ApprovalStatus::Running,
                    ApprovalStatusArg::Completed => ApprovalStatus::Completed,
                    ApprovalStatusArg::Terminated => ApprovalStatus::Terminated,
                    ApprovalStatusArg::Failed => ApprovalStatus::Failed,
                }),
                flow,
                business_key,
                limit,
                ..ApprovalFilter::default()
            };
            list(store, &filter, json, lang).await
        }
        ApprovalsCommand::Show { id, json } => show(store, &id, json, lang).await,
    }
}

async fn list(
    store: &dyn Store,
    filter: &ApprovalFilter,
    json: bool,
    lang: Lang,
) -> Result<(), Failure> {
    let approvals = store
        .list_approvals(filter)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    if json {
        return print_json(serde_json::to_string_pretty(&approvals), lang);
    }
    if approvals.is_empty() {
        println!("{}", Msg::NoApprovals.text(lang));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|a| {
            vec![
                a.fields.id.clone(),
                a.status.as_str().to_owned(),
                dash(a.result.as_deref()),
                a.fields.flow.clone(),
                dash(a.fields.business_key.as_deref()),
                truncate(&dash(title(a)), 30),
                a.fields.originator.clone(),
                local_time(a.fields.created_at),
            ]
        })
        .collect();
    print_table(Table::Approvals.header(lang), &rows);
    Ok(())
}

async fn show(store: &dyn Store, id: &str, json: bool, lang: Lang) -> Result<(), Failure> {
    let approval = store
        .get_approval(id)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?
        .ok_or_else(|| Failure::runtime(Msg::ApprovalNotFound { id }.text(lang)))?;
    let messages = store
        .list_webhook_messages(id)
        .await
        .map_err(|e| runtime_error(lang, &e.to_string()))?;
    if json {
        let mut value =
            serde_json::to_value(&approval).map_err(|e| runtime_error(lang, &e.to_string()))?;
        value["webhook_messages"] =
            serde_json::to_value(&messages).map_err(|e| runtime_error(lang, &e.to_string()))?;
        return print_json(serde_json::to_string_pretty(&value), lang);
    }

    println!("{}", Msg::ApprovalHeading { id }.text(lang));
    let f = &approval.fields;
    let mut fields = vec![
        (Label::Status, approval.status.as_str().to_owned()),
        (Label::Result, dash(approval.result.as_deref())),
        (Label::Flow, f.flow.clone()),
        (Label::Template, f.process_code.clone()),
        (Label::Originator, f.originator.clone()),
        (Label::BusinessKey, dash(f.business_key.as_deref())),
        (Label::Title, dash(title(&approval))),
        (Label::Instance, dash(approval.instance_id.as_deref())),
    ];
    if let Some(id) = f.api_key_id {
        // The key by its prefix and name, as `keys list` shows it.
        let keys = store
            .list_api_keys()
            .await
            .map_err(|e| runtime_error(lang, &e.to_string()))?;
        let key = keys.iter().find(|k| k.id == id).map_or_else(
            || format!("#{id}"),
            |k| format!("{} ({})", k.prefix, k.name),
        );
        fields.push((Label::ApiKey, key));
    }
    fields.push((Label::Created, local_time(f.created_at)));
    fields.push((Label::Updated, local_time(approval.updated_at)));
    if let Some(error) = approval
        .snapshot
        .as_ref()
        .and_then(|s| s.get("error"))
        .and_then(Value::as_str)
    {
        fields.push((Label::Error, error.to_owned()));
    }
    let rows: Vec<Vec<String>> = fields
        .into_iter()
        .map(|(label, value)| vec![format!("  {}", label.text(lang)), value])
        .collect();
    print_rows(&rows);

    let tasks = tasks(&approval);
    println!();
    println!("{}", Msg::TasksHeading { count: tasks.len() }.text(lang));
    if tasks.is_empty() {
        println!("{}", Msg::NoTasks.text(lang));
    } else {
        print_indented_table(Table::Tasks.header(lang), &tasks);
    }

    println!();
    println!(
        "{}",
        Msg::MessagesHeading {
            count: messages.len()
        }
        .text(lang)
    );
    if messages.is_empty() {
        println!("  {}", Msg::NoMessages { subject: id }.text(lang));
    } else {
        print_indented_table(Table::Messages.header(lang), &message_rows(&messages));
    }
    Ok(())
}

/// The instance title DingTalk gave (from the last snapshot).
fn title(a: &Approval) -> Option<&str> {
    a.snapshot
        .as_ref()
        .and_then(|s| s.get("title"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
}

/// The tasks of the last snapshot, one row each (either spelling of DingTalk's fields).
fn tasks(a: &Approval) -> Vec<Vec<String>> {
    let Some(tasks) = a
        .snapshot
        .as_ref()
        .and_then(|s| s.get("tasks"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let text = |t: &Value, keys: &[&str]| -> String {
        keys.iter()
            .find_map(|k| match t.get(*k) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "-".into())
    };
    tasks
        .iter()
        .map(|t| {
            vec![
                text(t, &["task_id", "taskId", "taskid"]),
                text(t, &["userid", "userId"]),
                text(t, &["task_status", "status"]),
                text(t, &["task_result", "result"]),
                text(t, &["activity_id", "activityId"]),
                text(t, &["create_time", "createTime"]),
                text(t, &["finish_time", "finishTime"]),
            ]
        })
        .collect()
}

/// One row per webhook message: seq, type, status, attempts, message id, delivered at.
pub(super) fn message_rows(messages: &[WebhookMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .map(|m| {
            vec![
                m.seq.to_string(),
                m.fields.event_type.clone(),
                m.status.as_str().to_owned(),
                m.attempts.to_string(),
                m.fields.message_id.clone(),
                m.delivered_at.map_or_else(|| "-".into(), local_time),
            ]
        })
        .collect()
}

/// Print what `serde_json::to_string_pretty` made of a value.
pub(super) fn print_json(text: serde_json::Result<String>, lang: Lang) -> Result<(), Failure> {
    let text = text.map_err(|e| runtime_error(lang, &e.to_string()))?;
    println!("{text}");
    Ok(())
}

pub(super) fn dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty())
        .map_or_else(|| "-".into(), str::to_owned)
}

/// Unix milliseconds as local time, the way `jobs list` prints them.
pub(super) fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Columns a character takes in a terminal: 2 for CJK and full-width forms, 0 for combining
/// marks, else 1.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

pub(super) fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// At most `max` columns wide, ending in `…` when cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if display_width(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut width = 0;
    for c in s.chars() {
        let w = char_width(c);
        if width + w + 1 > max {
            break;
        }
        width += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Rows with their columns padded to the widest cell (by display width), two spaces apart;
/// the last column is not padded.
fn render(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| display_width(c))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < r.len() {
                    let pad = widths[i] - display_width(cell) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect()
}

fn print_rows(rows: &[Vec<String>]) {
    for line in render(rows) {
        println!("{line}");
    }
}

/// A heading line and rows, aligned.
pub(super) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut all = Vec::with_capacity(rows.len() + 1);
    all.push(header.iter().map(|h| (*h).to_owned()).collect());
    all.extend(rows.iter().cloned());
    print_rows(&all);
}

fn print_indented_table(header: &[&str], rows: &[Vec<String>]) {
    let mut all: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    all.push(header.iter().map(|h| (*h).to_owned()).collect());
    all.extend(rows.iter().cloned());
    for line in render(&all) {
        println!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_cells_are_padded_by_display_width() {
        let rows = vec![
            vec!["业务单号".to_owned(), "x".to_owned()],
            vec!["BX-1".to_owned(), "y".to_owned()],
        ];
        let lines = render(&rows);
        assert_eq!(lines[0], "业务单号  x");
        assert_eq!(lines[1], "BX-1      y");
        assert_eq!(display_width("差旅费报销"), 10);
        assert_eq!(truncate("张三提交的费用报销", 9), "张三提交…");
        assert_eq!(truncate("short", 9), "short");
    }
}
