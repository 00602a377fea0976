//! `dingbridge rules test` as a user runs it: rules from a file or from a flow in the
//! configuration, one record or many, one clear line and exit 2 on any failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dingbridge");

fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(BIN)
        .args(args)
        .env_remove("LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("DINGBRIDGE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const RULES_TOML: &str = r#"
[[fields]]
to = "FStaffNumber"
from = "userid"
template = "DT{value}"
required = true

[[fields]]
to = "FName"
from = "name"

[[fields]]
to = "FMobile"
from = "mobile"
regex = '^1[3-9]\d{9}$'

[[fields]]
to = "FDept"
from = "dept_id_list.0"
reference = "FNumber"

[[fields]]
to = "FJoinDate"
from = "hired_date"
date = { from = "epoch_ms", to = "%Y-%m-%d" }

[[fields]]
to = "FSalary"
from = "salary_fen"
divide = 100
"#;

const ZHANG_SAN: &str = r#"{"userid": "0001", "name": "张三", "mobile": "13800138000",
  "dept_id_list": [12, 3], "hired_date": 1688140800000, "salary_fen": 1234500}"#;

fn paths(dir: &Path, rules: &str, record: &str) -> (String, String) {
    let r = write(dir, "rules.toml", rules);
    let s = write(dir, "sample.json", record);
    (r.display().to_string(), s.display().to_string())
}

#[test]
fn maps_one_record_from_a_toml_rules_file() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, record) = paths(dir.path(), RULES_TOML, ZHANG_SAN);
    let (code, out, err) = run(&["rules", "test", "--rules", &rules, "--record", &record]);
    assert_eq!(code, 0, "{err}");
    // Printed in rule order, as pretty JSON.
    let expected = r#"{
  "FStaffNumber": "DT0001",
  "FName": "张三",
  "FMobile": "13800138000",
  "FDept": {
    "FNumber": 12
  },
  "FJoinDate": "2023-07-01",
  "FSalary": 12345
}
"#;
    assert_eq!(out, expected);
}

#[test]
fn a_failing_record_is_one_line_naming_the_field_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, record) = paths(
        dir.path(),
        RULES_TOML,
        r#"{"userid": "0002", "name": "李四", "mobile": "010-1234"}"#,
    );
    let (code, out, err) = run(&[
        "--lang", "en", "rules", "test", "--rules", &rules, "--record", &record,
    ]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("field `FMobile`: value \"010-1234\" does not match the pattern"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "--lang", "zh", "rules", "test", "--rules", &rules, "--record", &record,
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("字段 `FMobile` 映射失败："), "{err}");
}

#[test]
fn many_records_print_each_result_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let records = format!(
        r#"[{ZHANG_SAN}, {{"name": "王五"}}, {{"userid": "0003", "name": "研发中心助理"}}]"#
    );
    let (rules, record) = paths(dir.path(), RULES_TOML, &records);
    let (code, out, err) = run(&[
        "--lang", "en", "rules", "test", "--rules", &rules, "--record", &record,
    ]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(err, "2 mapped, 1 failed");
    assert!(
        out.starts_with("record 1:\n{\n  \"FStaffNumber\": \"DT0001\""),
        "{out}"
    );
    assert!(
        out.contains("record 2: field `FStaffNumber`: is required but empty; map it from a field that has a value or set `default`\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "record 3:\n{\n  \"FStaffNumber\": \"DT0003\",\n  \"FName\": \"研发中心助理\""
        ),
        "{out}"
    );

    // All good: the summary goes to stdout and the exit is 0.
    let ok = write(
        dir.path(),
        "ok.json",
        &format!("[{ZHANG_SAN}, {ZHANG_SAN}]"),
    );
    let (code, out, _) = run(&[
        "--lang",
        "zh",
        "rules",
        "test",
        "--rules",
        &rules,
        "--record",
        ok.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.trim_end().ends_with("映射成功 2 条，失败 0 条"),
        "{out}"
    );
}

#[test]
fn rules_from_a_flow_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "dingbridge.toml",
        &format!(
            r#"
[store]
url = "sqlite://{}/db.sqlite"

[flows.org_demo]
recipe = "selftest"

[[flows.org_demo.options.departments.fields]]
to = "FNumber"
from = "dept_id"
template = "D{{value}}"

[[flows.org_demo.options.departments.fields]]
to = "FName"
from = "name"
"#,
            dir.path().display()
        ),
    );
    let config = config.to_str().unwrap();
    let record = write(
        dir.path(),
        "dept.json",
        r#"{"dept_id": 7, "name": "研发中心"}"#,
    );
    let record = record.to_str().unwrap();
    let (code, out, err) = run(&[
        "rules",
        "test",
        "-c",
        config,
        "--flow",
        "org_demo",
        "--entity",
        "departments",
        "--record",
        record,
    ]);
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"FNumber": "D7", "FName": "研发中心"})
    );

    let (code, _, err) = run(&[
        "--lang", "en", "rules", "test", "-c", config, "--flow", "org_demo", "--entity", "users",
        "--record", record,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("[flows.org_demo.options.users]"), "{err}");
    let (code, _, err) = run(&[
        "--lang", "en", "rules", "test", "-c", config, "--flow", "nope", "--entity", "users",
        "--record", record,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no flow `nope`") && err.contains("org_demo"),
        "{err}"
    );
}

#[test]
fn rules_that_do_not_compile_name_the_rule_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, record) = paths(
        dir.path(),
        "[[fields]]\nto = \"FName\"\nfrom = \"name\"\n\n[[fields]]\nto = \"FMobile\"\nfrm = \"mobile\"\n",
        ZHANG_SAN,
    );
    let (code, _, err) = run(&[
        "--lang", "en", "rules", "test", "--rules", &rules, "--record", &record,
    ]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("rules.toml: rule #2 (`FMobile`): unknown key `frm`; did you mean `from`?"),
        "{err}"
    );
    let (_, _, err) = run(&[
        "--lang", "zh", "rules", "test", "--rules", &rules, "--record", &record,
    ]);
    assert!(err.contains("映射规则第 2 条（`FMobile`）有误"), "{err}");
}

#[test]
fn json_rules_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "rules.json",
        r#"[{"to": "F", "expr": "name + \"！\""}]"#,
    );
    let rules = rules.to_str().unwrap();
    let record = write(dir.path(), "r.json", r#"{"name": "张三"}"#);
    let record = record.to_str().unwrap();
    let (code, out, err) = run(&["rules", "test", "--rules", rules, "--record", record]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "{\n  \"F\": \"张三！\"\n}\n");

    // A TOML syntax error: file:line:col.
    let bad = write(dir.path(), "bad.toml", "[[fields]]\nto = \"F\nfrom = 1\n");
    let (code, _, err) = run(&[
        "--lang",
        "en",
        "rules",
        "test",
        "--rules",
        bad.to_str().unwrap(),
        "--record",
        record,
    ]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.toml:2:"), "{err}");
    // No `fields`.
    let none = write(dir.path(), "none.toml", "title = \"x\"\n");
    let (code, _, err) = run(&[
        "--lang",
        "en",
        "rules",
        "test",
        "--rules",
        none.to_str().unwrap(),
        "--record",
        record,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("has no `fields` array"), "{err}");
    // A record that is not an object.
    let scalar = write(dir.path(), "scalar.json", "42");
    let (code, _, err) = run(&[
        "--lang",
        "en",
        "rules",
        "test",
        "--rules",
        rules,
        "--record",
        scalar.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("must hold a JSON object or an array of objects"),
        "{err}"
    );
    // Broken JSON: file:line:col.
    let broken = write(dir.path(), "broken.json", "{\n  \"name\": \n");
    let (code, _, err) = run(&[
        "--lang",
        "en",
        "rules",
        "test",
        "--rules",
        rules,
        "--record",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.json:3:"), "{err}");
    // A missing file.
    let (code, _, err) = run(&[
        "--lang",
        "en",
        "rules",
        "test",
        "--rules",
        "/nonexistent/r.toml",
        "--record",
        record,
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("cannot read /nonexistent/r.toml"), "{err}");
}

#[test]
fn rules_or_flow_is_required() {
    let (code, _, err) = run(&["rules", "test", "--record", "x.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("--rules"), "{err}");
    let (code, _, err) = run(&["rules", "test", "--flow", "f", "--record", "x.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("--entity"), "{err}");
}
