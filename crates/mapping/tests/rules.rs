//! Every operation, its error messages, the order guarantee, and the sandbox.
#![allow(clippy::unwrap_used)]

use mapping::{CompileError, FieldRule, Mapping, MappingError};
use serde_json::{Map, Value, json};

fn mapping(rules: Value) -> Mapping {
    Mapping::from_value(&rules).unwrap_or_else(|e| panic!("rules should compile: {e}"))
}

fn compile_err(rules: Value) -> CompileError {
    match Mapping::from_value(&rules) {
        Ok(_) => panic!("rules should not compile: {rules}"),
        Err(e) => e,
    }
}

fn record(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn map_one(rules: Value, source: Value) -> Result<Map<String, Value>, MappingError> {
    mapping(rules).apply(&record(source))
}

/// The value written for `to` by a one-rule mapping.
fn one(rule: Value, source: Value) -> Result<Value, MappingError> {
    let to = rule["to"].as_str().unwrap().to_owned();
    let out = map_one(json!([rule]), source)?;
    Ok(out.get(&to).cloned().unwrap_or(json!("<omitted>")))
}

fn reason(rule: Value, source: Value) -> String {
    let to = rule["to"].as_str().unwrap().to_owned();
    let e = one(rule, source).expect_err("the rule should fail");
    assert_eq!(e.field, to);
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("field `{to}`: ")), "{shown}");
    assert_eq!(shown.lines().count(), 1, "{shown}");
    e.reason
}

// ---- value sources ----

#[test]
fn from_copies_a_field_and_reaches_into_objects_and_arrays() {
    let src = json!({
        "name": "张三",
        "dept": { "name": "研发中心", "ids": [10, 20] },
        "dept_id_list": [1, 2, 3],
        "a.b": "literal dotted key",
    });
    assert_eq!(
        one(json!({"to": "FName", "from": "name"}), src.clone()).unwrap(),
        "张三"
    );
    assert_eq!(
        one(json!({"to": "F", "from": "dept.name"}), src.clone()).unwrap(),
        "研发中心"
    );
    assert_eq!(
        one(json!({"to": "F", "from": "dept.ids.1"}), src.clone()).unwrap(),
        20
    );
    assert_eq!(
        one(json!({"to": "F", "from": "dept_id_list.0"}), src.clone()).unwrap(),
        1
    );
    assert_eq!(
        one(json!({"to": "F", "from": "a.b"}), src.clone()).unwrap(),
        "literal dotted key"
    );
    // Missing anywhere along the path is null, never an error.
    for path in [
        "nope",
        "dept.nope",
        "dept_id_list.9",
        "name.x",
        "dept.ids.x",
    ] {
        assert_eq!(
            one(json!({"to": "F", "from": path}), src.clone()).unwrap(),
            Value::Null,
            "{path}"
        );
    }
}

#[test]
fn constant_is_any_json_including_null() {
    for c in [
        json!("BD_Empinfo"),
        json!(1),
        json!(null),
        json!({"FNumber": "100"}),
        json!([1, "二"]),
    ] {
        assert_eq!(
            one(json!({"to": "F", "constant": c.clone()}), json!({})).unwrap(),
            c
        );
    }
}

#[test]
fn expr_sees_fields_record_and_value() {
    let src =
        json!({"name": "张三", "age": 30, "dept": {"name": "研发中心"}, "job-title": "工程师"});
    assert_eq!(
        one(
            json!({"to": "F", "expr": "name + \"（\" + dept.name + \"）\""}),
            src.clone()
        )
        .unwrap(),
        "张三（研发中心）"
    );
    assert_eq!(
        one(json!({"to": "F", "expr": "age * 2 + 1"}), src.clone()).unwrap(),
        61
    );
    // Fields whose names are not identifiers are reachable through `record`.
    assert_eq!(
        one(
            json!({"to": "F", "expr": "record[\"job-title\"]"}),
            src.clone()
        )
        .unwrap(),
        "工程师"
    );
    // A missing property of `record` is (), i.e. null.
    assert_eq!(
        one(json!({"to": "F", "expr": "record.mobile"}), src.clone()).unwrap(),
        Value::Null
    );
    // from + expr: the expression sees the from value as `value`.
    assert_eq!(
        one(
            json!({"to": "F", "from": "dept.name", "expr": "value.len()"}),
            src.clone()
        )
        .unwrap(),
        4
    );
    // Scripts, not just expressions: the last expression is the value; maps and arrays come back as JSON.
    assert_eq!(
        one(
            json!({"to": "F", "expr": "let parts = []; for c in name.chars() { parts.push(c.to_string()); } #{n: parts.len(), first: parts[0]}"}),
            src.clone()
        )
        .unwrap(),
        json!({"first": "张", "n": 2})
    );
    assert_eq!(
        one(
            json!({"to": "F", "expr": "if age > 18 { \"adult\" } else { () }"}),
            src
        )
        .unwrap(),
        "adult"
    );
}

#[test]
fn expr_errors_name_the_field_and_the_fix() {
    let r = reason(
        json!({"to": "FMobile", "expr": "mobile"}),
        json!({"name": "x"}),
    );
    assert!(r.contains("`mobile`") && r.contains("record.mobile"), "{r}");
    let r = reason(json!({"to": "F", "expr": "throw \"工号缺失\""}), json!({}));
    assert!(r.contains("工号缺失"), "{r}");
    let r = reason(json!({"to": "F", "expr": "1 / 0"}), json!({}));
    assert!(r.starts_with("`expr` failed"), "{r}");
    // A value with no JSON form.
    let r = reason(json!({"to": "F", "expr": "|x| x + 1"}), json!({}));
    assert!(r.contains("no JSON form"), "{r}");
}

#[test]
fn expr_that_never_ends_hits_the_operation_limit() {
    let started = std::time::Instant::now();
    for script in [
        "loop {}",
        "let i = 0; while true { i += 1; }",
        "fn f(n) { f(n + 1) } f(0)",
    ] {
        let r = reason(json!({"to": "FLoop", "expr": script}), json!({}));
        assert!(
            r.contains("operations") || r.contains("levels"),
            "{script}: {r}"
        );
    }
    let r = reason(json!({"to": "FLoop", "expr": "loop {}"}), json!({}));
    assert!(r.contains("100000 operations"), "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn expr_cannot_build_huge_values() {
    let r = reason(
        json!({"to": "F", "expr": "let s = \"x\"; loop { s += s; }"}),
        json!({}),
    );
    assert!(r.contains("limit") || r.contains("operations"), "{r}");
    let r = reason(
        json!({"to": "F", "expr": "let a = []; for i in 0..20000 { a.push(i); } a"}),
        json!({}),
    );
    assert!(r.contains("limit") || r.contains("operations"), "{r}");
}

#[test]
fn expr_sandbox_refuses_eval_and_import_at_compile_time() {
    for script in ["eval(\"1\")", "import \"x\" as y; 1"] {
        let e = compile_err(json!([{"to": "F", "expr": script}]));
        assert!(e.reason.contains("does not compile"), "{script}: {e}");
    }
    // print/debug compile and have no effect (no output a test could see, but no error).
    assert_eq!(
        one(
            json!({"to": "F", "expr": "print(\"x\"); debug(1); 2"}),
            json!({})
        )
        .unwrap(),
        2
    );
}

#[test]
fn expr_rules_do_not_leak_into_each_other() {
    let m = mapping(json!([
        {"to": "A", "expr": "let x = 1; x"},
        {"to": "B", "expr": "x"},
    ]));
    let e = m.apply(&Map::new()).unwrap_err();
    assert_eq!(e.field, "B");
    // Fields are constants: an expression cannot change the record the next rule sees.
    let m = mapping(json!([
        {"to": "A", "expr": "name = \"李四\"; name"},
    ]));
    assert!(m.apply(&record(json!({"name": "张三"}))).is_err());
    // rhai lets a script add a property to the constant `record`; it stays in that rule.
    let m = mapping(json!([
        {"to": "A", "expr": "record.added = 1; record.added"},
        {"to": "B", "expr": "record.added"},
    ]));
    let out = m.apply(&record(json!({"name": "张三"}))).unwrap();
    assert_eq!((&out["A"], &out["B"]), (&json!(1), &Value::Null));
}

// ---- transforms ----

#[test]
fn default_fills_missing_null_and_empty_but_not_zero() {
    let rule = json!({"to": "F", "from": "x", "default": "未知"});
    assert_eq!(one(rule.clone(), json!({})).unwrap(), "未知");
    assert_eq!(one(rule.clone(), json!({"x": null})).unwrap(), "未知");
    assert_eq!(one(rule.clone(), json!({"x": ""})).unwrap(), "未知");
    assert_eq!(one(rule.clone(), json!({"x": 0})).unwrap(), 0);
    assert_eq!(one(rule, json!({"x": "有"})).unwrap(), "有");
}

#[test]
fn dict_looks_up_text_and_numbers_with_each_fallback() {
    let dict = json!({"1": "男", "2": "女", "研发中心": {"FNumber": "D01"}});
    let rule = |fallback: Option<&str>| {
        let mut r = json!({"to": "FGender", "from": "x", "dict": dict.clone()});
        if let Some(f) = fallback {
            r["dict_fallback"] = json!(f);
        }
        r
    };
    assert_eq!(one(rule(None), json!({"x": 1})).unwrap(), "男");
    assert_eq!(one(rule(None), json!({"x": "2"})).unwrap(), "女");
    assert_eq!(
        one(rule(None), json!({"x": "研发中心"})).unwrap(),
        json!({"FNumber": "D01"})
    );
    assert_eq!(one(rule(None), json!({"x": 3})).unwrap(), 3);
    assert_eq!(one(rule(Some("keep")), json!({"x": "x"})).unwrap(), "x");
    assert_eq!(
        one(rule(Some("null")), json!({"x": "x"})).unwrap(),
        Value::Null
    );
    let r = reason(rule(Some("error")), json!({"x": 9}));
    assert_eq!(
        r,
        "value 9 not in dictionary; add it to `dict` (or set dict_fallback = \"keep\")"
    );
    let r = reason(rule(Some("error")), json!({"x": "市场部"}));
    assert!(
        r.contains("\"市场部\" not in dictionary; add it to `dict`"),
        "{r}"
    );
    // Empty values are not looked up: `default` or `required` decide about them.
    assert_eq!(one(rule(Some("error")), json!({})).unwrap(), Value::Null);
}

#[test]
fn regex_must_match() {
    let rule = json!({"to": "FMobile", "from": "mobile", "regex": "^1[3-9]\\d{9}$"});
    assert_eq!(
        one(rule.clone(), json!({"mobile": "13800138000"})).unwrap(),
        "13800138000"
    );
    let r = reason(rule.clone(), json!({"mobile": "138-0013"}));
    assert_eq!(
        r,
        "value \"138-0013\" does not match the pattern `^1[3-9]\\d{9}$`; fix the source data or the `regex`"
    );
    // Numbers are matched as written.
    assert_eq!(
        one(rule.clone(), json!({"mobile": 13800138000u64})).unwrap(),
        13800138000u64
    );
    let r = reason(rule.clone(), json!({"mobile": ["13800138000"]}));
    assert!(r.contains("needs text, got array"), "{r}");
    // Chinese patterns and text.
    let rule = json!({"to": "FDept", "from": "dept", "regex": "中心$"});
    assert_eq!(
        one(rule.clone(), json!({"dept": "研发中心"})).unwrap(),
        "研发中心"
    );
    assert!(reason(rule, json!({"dept": "研发部"})).contains("中心$"));
}

#[test]
fn date_converts_epochs_and_formats_in_china_time_by_default() {
    // 2023-07-01 00:00 in UTC+8 is 2023-06-30 16:00 UTC.
    let ms = 1_688_140_800_000i64;
    let rule = json!({"to": "FJoinDate", "from": "hired_date", "date": {"from": "epoch_ms", "to": "%Y-%m-%d"}});
    assert_eq!(
        one(rule.clone(), json!({"hired_date": ms})).unwrap(),
        "2023-07-01"
    );
    assert_eq!(
        one(rule.clone(), json!({"hired_date": ms.to_string()})).unwrap(),
        "2023-07-01"
    );
    let utc = json!({"to": "F", "from": "t", "date": {"from": "epoch_ms", "to": "%Y-%m-%d %H:%M", "tz_offset_hours": 0}});
    assert_eq!(one(utc, json!({"t": ms})).unwrap(), "2023-06-30 16:00");
    let secs =
        json!({"to": "F", "from": "t", "date": {"from": "epoch_s", "to": "%Y/%m/%d %H:%M:%S"}});
    assert_eq!(
        one(secs, json!({"t": ms / 1000})).unwrap(),
        "2023/07/01 00:00:00"
    );
    // Text → epoch, and text → text (date alone is midnight local time).
    let back = json!({"to": "F", "from": "d", "date": {"from": "%Y-%m-%d", "to": "epoch_ms"}});
    assert_eq!(one(back, json!({"d": "2023-07-01"})).unwrap(), ms);
    let reformat = json!({"to": "F", "from": "d", "date": {"from": "%Y-%m-%d %H:%M:%S", "to": "%Y年%m月%d日"}});
    assert_eq!(
        one(reformat, json!({"d": "2023-07-01 09:30:00"})).unwrap(),
        "2023年07月01日"
    );
    // Text with its own offset keeps it.
    let zoned = json!({"to": "F", "from": "d", "date": {"from": "%Y-%m-%dT%H:%M:%S%z", "to": "%Y-%m-%d %H:%M"}});
    assert_eq!(
        one(zoned, json!({"d": "2023-06-30T23:00:00+0000"})).unwrap(),
        "2023-06-30 23:00"
    );
}

#[test]
fn date_errors() {
    let rule =
        json!({"to": "FJoinDate", "from": "d", "date": {"from": "%Y-%m-%d", "to": "epoch_ms"}});
    let r = reason(rule.clone(), json!({"d": "2023/07/01"}));
    assert_eq!(
        r,
        "value \"2023/07/01\" does not match the date format \"%Y-%m-%d\"; fix `date.from`"
    );
    let r = reason(rule, json!({"d": 5}));
    assert!(r.contains("expects text in the format"), "{r}");
    let epoch = json!({"to": "F", "from": "d", "date": {"from": "epoch_ms", "to": "%Y"}});
    assert!(reason(epoch.clone(), json!({"d": "昨天"})).contains("Unix timestamp"));
    assert!(reason(epoch.clone(), json!({"d": i64::MAX})).contains("out of the range"));
    // At the very ends of chrono's range the +8 h shift must not panic.
    let max_ms = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
    let min_ms = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis();
    for ms in [max_ms, min_ms] {
        let _ = one(epoch.clone(), json!({"d": ms}));
        let east = json!({"to": "F", "from": "d", "date": {"from": "epoch_ms", "to": "epoch_s", "tz_offset_hours": -23}});
        let _ = one(east, json!({"d": ms}));
    }
    let text_end = json!({"to": "F", "from": "d", "date": {"from": "%Y-%m-%d", "to": "epoch_ms", "tz_offset_hours": -12}});
    let _ = one(text_end, json!({"d": "262142-12-31"}));
}

#[test]
fn divide_and_multiply_without_float_noise() {
    let fen = json!({"to": "FAmount", "from": "fen", "divide": 100});
    assert_eq!(
        one(fen.clone(), json!({"fen": 12345})).unwrap(),
        json!(123.45)
    );
    assert_eq!(
        serde_json::to_string(&one(fen.clone(), json!({"fen": 12345})).unwrap()).unwrap(),
        "123.45"
    );
    assert_eq!(one(fen.clone(), json!({"fen": 10000})).unwrap(), json!(100));
    assert_eq!(
        one(fen.clone(), json!({"fen": "1999"})).unwrap(),
        json!(19.99)
    );
    assert_eq!(one(fen.clone(), json!({"fen": -5})).unwrap(), json!(-0.05));
    let yuan = json!({"to": "F", "from": "x", "multiply": 100});
    assert_eq!(one(yuan.clone(), json!({"x": 19.99})).unwrap(), json!(1999));
    assert_eq!(one(yuan, json!({"x": 0.1})).unwrap(), json!(10));
    let three = json!({"to": "F", "from": "x", "multiply": 3});
    assert_eq!(one(three, json!({"x": 1.1})).unwrap(), json!(3.3));
    let r = reason(fen, json!({"fen": "十元"}));
    assert_eq!(r, "`multiply`/`divide` need a number, got string \"十元\"");
}

#[test]
fn template_and_reference() {
    let rule = json!({"to": "FStaffNumber", "from": "userid", "template": "DT{value}"});
    assert_eq!(
        one(rule.clone(), json!({"userid": "0123"})).unwrap(),
        "DT0123"
    );
    assert_eq!(one(rule.clone(), json!({"userid": 12})).unwrap(), "DT12");
    assert_eq!(one(rule.clone(), json!({})).unwrap(), Value::Null);
    assert!(reason(rule, json!({"userid": {"a": 1}})).contains("`template` needs text"));
    let rule =
        json!({"to": "FDept", "from": "dept_id", "template": "DT{value}", "reference": "FNumber"});
    assert_eq!(
        one(rule.clone(), json!({"dept_id": 12})).unwrap(),
        json!({"FNumber": "DT12"})
    );
    assert_eq!(one(rule, json!({"dept_id": null})).unwrap(), Value::Null);
}

#[test]
fn required_fails_on_empty_results_only() {
    let rule = json!({"to": "FMobile", "from": "mobile", "required": true});
    assert_eq!(one(rule.clone(), json!({"mobile": "138"})).unwrap(), "138");
    assert_eq!(one(rule.clone(), json!({"mobile": 0})).unwrap(), 0);
    for src in [json!({}), json!({"mobile": null}), json!({"mobile": ""})] {
        let e = one(rule.clone(), src).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `FMobile`: is required but empty; map it from a field that has a value or set `default`"
        );
    }
    // A dictionary that maps to null makes it empty after the transforms.
    let rule = json!({"to": "F", "from": "x", "dict": {"a": 1}, "dict_fallback": "null", "required": true});
    assert!(reason(rule, json!({"x": "b"})).contains("required"));
    // A default rescues it.
    let rule = json!({"to": "F", "from": "x", "default": "无", "required": true});
    assert_eq!(one(rule, json!({})).unwrap(), "无");
}

#[test]
fn transforms_run_in_the_documented_order() {
    // default → dict → regex → divide → template → reference: each step sees the one before.
    let rule = json!({
        "to": "FSalary", "from": "level",
        "default": "P5",
        "dict": {"P5": 1234500, "P6": 1500000},
        "regex": "^\\d+$",
        "divide": 100,
        "template": "{value} 元",
        "reference": "FName",
    });
    assert_eq!(
        one(rule.clone(), json!({})).unwrap(),
        json!({"FName": "12345 元"})
    );
    assert_eq!(
        one(rule, json!({"level": "P6"})).unwrap(),
        json!({"FName": "15000 元"})
    );
    // dict before date: a code → a date text → reformatted.
    let rule = json!({
        "to": "F", "from": "k",
        "dict": {"start": "2024-01-02"},
        "date": {"from": "%Y-%m-%d", "to": "%d/%m/%Y"},
    });
    assert_eq!(one(rule, json!({"k": "start"})).unwrap(), "02/01/2024");
    // expr runs before the transforms.
    let rule = json!({"to": "F", "expr": "\"1\" + \"2\"", "multiply": 2, "template": "#{value}"});
    assert_eq!(one(rule, json!({})).unwrap(), "#24");
}

#[test]
fn output_follows_rule_order_and_when_missing() {
    let m = mapping(json!([
        {"to": "FNumber", "from": "userid", "template": "DT{value}"},
        {"to": "FName", "from": "name"},
        {"to": "FMobile", "from": "mobile", "when_missing": "omit"},
        {"to": "FEmail", "from": "email", "when_missing": "null"},
        {"to": "FDept", "from": "dept", "reference": "FNumber"},
        {"to": "A_first_alphabetically", "constant": 1},
    ]));
    assert_eq!(
        m.target_fields(),
        [
            "FNumber",
            "FName",
            "FMobile",
            "FEmail",
            "FDept",
            "A_first_alphabetically"
        ]
    );
    let out = m
        .apply(&record(
            json!({"name": "张三", "userid": "u1", "dept": "研发中心", "zzz": 1}),
        ))
        .unwrap();
    let keys: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "FNumber",
            "FName",
            "FEmail",
            "FDept",
            "A_first_alphabetically"
        ]
    );
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        r#"{"FNumber":"DTu1","FName":"张三","FEmail":null,"FDept":{"FNumber":"研发中心"},"A_first_alphabetically":1}"#
    );
    let out = m.apply(&record(json!({"mobile": "138"}))).unwrap();
    assert_eq!(out["FMobile"], "138");
}

#[test]
fn one_bad_record_of_two_thousand_fails_alone() {
    let m = mapping(json!([
        {"to": "FStaffNumber", "from": "userid", "template": "DT{value}", "required": true},
        {"to": "FName", "from": "name", "required": true},
        {"to": "FMobile", "from": "mobile", "regex": "^1\\d{10}$"},
        {"to": "FDept", "from": "dept_id_list.0", "reference": "FNumber"},
        {"to": "FJoinDate", "from": "hired_date", "date": {"from": "epoch_ms", "to": "%Y-%m-%d"}},
    ]));
    let records: Vec<Map<String, Value>> = (0..2000)
        .map(|i| {
            let mobile = if i == 1234 {
                "not-a-phone".to_owned()
            } else {
                format!("138{i:08}")
            };
            record(json!({
                "userid": format!("u{i}"),
                "name": format!("员工{i}"),
                "mobile": mobile,
                "dept_id_list": [i % 7],
                "hired_date": 1_688_140_800_000i64 + i64::from(i) * 86_400_000,
            }))
        })
        .collect();
    let results: Vec<_> = records.iter().map(|r| m.apply(r)).collect();
    let failed: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [1234]);
    let e = results[1234].as_ref().unwrap_err();
    assert_eq!(e.field, "FMobile");
    assert!(e.reason.contains("not-a-phone"), "{e}");
    let ok = results[1].as_ref().unwrap();
    assert_eq!(ok["FStaffNumber"], "DTu1");
    assert_eq!(ok["FName"], "员工1");
    assert_eq!(ok["FDept"], json!({"FNumber": 1}));
    assert_eq!(ok["FJoinDate"], "2023-07-02");
}

#[test]
fn mapping_is_clone_send_sync_and_shared_across_threads() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Mapping>();
    let m = mapping(json!([{"to": "F", "expr": "name + \"!\""}]));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || m.apply(&record(json!({"name": format!("张{i}")}))).unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap()["F"], format!("张{i}!"));
    }
}

#[test]
fn field_rules_compile_from_code() {
    let rules = vec![
        FieldRule {
            to: "FName".into(),
            from: Some("name".into()),
            ..FieldRule::default()
        },
        FieldRule {
            to: "FForbidStatus".into(),
            constant: Some(json!("A")),
            ..FieldRule::default()
        },
    ];
    let m = Mapping::compile(rules).unwrap();
    assert_eq!(
        m.apply(&record(json!({"name": "张三"}))).unwrap(),
        record(json!({"FName": "张三", "FForbidStatus": "A"}))
    );
}

// ---- compile errors ----

#[test]
fn compile_errors_name_rule_field_and_fix() {
    let cases: Vec<(Value, usize, &str, &str)> = vec![
        (
            json!([{"to": "A", "from": "a"}, {"to": "FMobile", "frm": "mobile"}]),
            1,
            "FMobile",
            "unknown key `frm`; did you mean `from`?",
        ),
        (
            json!([{"to": "FMobile"}]),
            0,
            "FMobile",
            "no value source; set one of `from`",
        ),
        (
            json!([{"to": "F", "from": "a", "constant": 1}]),
            0,
            "F",
            "`from` and `constant` are both set; keep one",
        ),
        (
            json!([{"to": "F", "constant": 1, "expr": "1"}]),
            0,
            "F",
            "`constant` and `expr` are both set",
        ),
        (json!([{"from": "a"}]), 0, "", "`to` is missing"),
        (json!([{"to": "", "from": "a"}]), 0, "", "`to` is empty"),
        (
            json!([{"to": "F", "from": "a"}, {"to": "F", "from": "b"}]),
            1,
            "F",
            "already mapped by rule #1",
        ),
        (
            json!([{"to": "F", "from": "a", "regex": "([0-9"}]),
            0,
            "F",
            "`regex` `([0-9` is not a valid pattern (unclosed character class)",
        ),
        (
            json!([{"to": "F", "from": "a", "date": {"from": "epoch_ms", "to": "%Q"}}]),
            0,
            "F",
            "`date.to` = \"%Q\" is not a valid chrono format",
        ),
        (
            json!([{"to": "F", "from": "a", "date": {"from": "%Y-%", "to": "%Y"}}]),
            0,
            "F",
            "`date.from`",
        ),
        (
            json!([{"to": "F", "from": "a", "date": {"from": "epoch_ms", "to": "%Y", "tz_offset_hours": 30}}]),
            0,
            "F",
            "out of range",
        ),
        (
            json!([{"to": "F", "from": "a", "date": {"from": "epoch_ms", "too": "%Y"}}]),
            0,
            "F",
            "`date`: unknown field `too`",
        ),
        (
            json!([{"to": "F", "expr": "name +"}]),
            0,
            "F",
            "`expr` does not compile",
        ),
        (
            json!([{"to": "F", "from": "a", "divide": 0}]),
            0,
            "F",
            "`divide` must be a number other than 0",
        ),
        (
            json!([{"to": "F", "from": "a", "divide": "100"}]),
            0,
            "F",
            "`divide`: invalid type: string",
        ),
        (
            json!([{"to": "F", "from": "a", "dict_fallback": "error"}]),
            0,
            "F",
            "`dict_fallback` is set without `dict`",
        ),
        (
            json!([{"to": "F", "from": "a", "dict": {}, "dict_fallback": "drop"}]),
            0,
            "F",
            "`dict_fallback`: unknown variant `drop`",
        ),
        (
            json!([{"to": "F", "from": "a", "when_missing": "skip"}]),
            0,
            "F",
            "`when_missing`: unknown variant `skip`",
        ),
        (
            json!([{"to": "F", "from": "a", "template": "DT"}]),
            0,
            "F",
            "has no `{value}`",
        ),
        (
            json!([{"to": "F", "from": "a", "reference": ""}]),
            0,
            "F",
            "`reference` is empty",
        ),
        (
            json!([{"to": "F", "from": "a..b"}]),
            0,
            "F",
            "has an empty part",
        ),
        (
            json!([{"to": "F", "from": "a"}, "x"]),
            1,
            "",
            "a rule must be a table",
        ),
        (json!({"to": "F"}), 0, "", "must be an array"),
    ];
    for (rules, index, field, needle) in cases {
        let e = compile_err(rules.clone());
        assert_eq!((e.index, e.field.as_str()), (index, field), "{rules}: {e}");
        assert!(
            e.reason.contains(needle),
            "{rules}: expected {needle:?} in {e}"
        );
        let shown = e.to_string();
        assert_eq!(shown.lines().count(), 1, "{shown}");
        let head = if field.is_empty() {
            format!("rule #{}: ", index + 1)
        } else {
            format!("rule #{} (`{field}`): ", index + 1)
        };
        assert!(shown.starts_with(&head), "{shown}");
    }
}

#[test]
fn from_and_expr_together_are_allowed() {
    let m = mapping(json!([{"to": "F", "from": "a", "expr": "value * 2"}]));
    assert_eq!(m.apply(&record(json!({"a": 21}))).unwrap()["F"], 42);
}
