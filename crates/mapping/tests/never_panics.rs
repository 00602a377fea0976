//! `apply` never panics, whatever the record holds, and its output keeps the rules' order.
#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use mapping::Mapping;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        // Text that looks like what the rules expect, and anything at all.
        prop_oneof![
            "[0-9]{0,14}",
            "1[3-9][0-9]{9}",
            "20[0-9]{2}-[01][0-9]-[0-3][0-9]",
            "[张李王赵研发中心部\\-]{0,6}",
            ".*",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Mostly the names the rules read, so transforms see data, plus anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "userid",
            "name",
            "mobile",
            "dept",
            "hired_date",
            "fen",
            "level",
            "d",
            "value",
            "record",
            "0",
            "a b",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ]
}

fn every_operation() -> Value {
    json!([
        {"to": "FNumber", "from": "userid", "template": "DT{value}", "required": true},
        {"to": "FName", "from": "name", "default": "无名"},
        {"to": "FMobile", "from": "mobile", "regex": "^1[3-9]\\d{9}$", "when_missing": "omit"},
        {"to": "FDept", "from": "dept.0.id", "reference": "FNumber"},
        {"to": "FDeptName", "from": "dept.name", "dict": {"研发中心": "R&D"}, "dict_fallback": "error"},
        {"to": "FJoin", "from": "hired_date", "date": {"from": "epoch_ms", "to": "%Y-%m-%d"}},
        {"to": "FDate", "from": "d", "date": {"from": "%Y-%m-%d", "to": "epoch_s", "tz_offset_hours": -5.5}},
        {"to": "FAmount", "from": "fen", "divide": 100, "multiply": 3},
        {"to": "FLevel", "from": "level", "dict": {"1": "P1"}, "dict_fallback": "null"},
        {"to": "FExpr", "expr": "if type_of(record.name) == \"string\" { name.len() } else { record.len() }"},
        {"to": "FValue", "from": "fen", "expr": "value"},
        {"to": "FSum", "expr": "let t = 0; for k in record.keys() { t += k.len(); } t"},
        {"to": "FConst", "constant": {"FNumber": "A"}},
    ])
}

/// All rules together, then each alone (together, the first failure hides the rest).
static MAPPINGS: LazyLock<Vec<Mapping>> = LazyLock::new(|| {
    let rules = every_operation();
    let mut all = vec![Mapping::from_value(&rules).unwrap()];
    for rule in rules.as_array().unwrap() {
        all.push(Mapping::from_value(&json!([rule])).unwrap());
    }
    all
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn apply_never_panics(fields in prop::collection::vec((key(), arb_json()), 0..10)) {
        let record: Map<String, Value> = fields.into_iter().collect();
        for mapping in MAPPINGS.iter() {
        match mapping.apply(&record) {
            Ok(out) => {
                // Every key is a target field, in the rules' order.
                let targets = mapping.target_fields();
                let mut positions = out.keys().map(|k| targets.iter().position(|t| t == k));
                let mut last = None;
                for p in &mut positions {
                    prop_assert!(p.is_some());
                    prop_assert!(p > last);
                    last = p;
                }
            }
            Err(e) => {
                prop_assert!(mapping.target_fields().contains(&e.field));
                prop_assert!(!e.reason.is_empty());
                prop_assert_eq!(e.to_string().lines().count(), 1);
            }
        }
        }
    }
}
