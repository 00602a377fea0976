//! The rhai sandbox: an engine with only the standard library and hard limits, so an
//! expression cannot reach the outside, print, load code, or run for ever.

use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};
use serde_json::{Map, Value};

/// Operations one evaluation may run (a tight loop does about this many in a few ms).
pub const MAX_OPERATIONS: u64 = 100_000;
const MAX_EXPR_DEPTH: usize = 64;
const MAX_FUNCTION_EXPR_DEPTH: usize = 32;
const MAX_CALL_LEVELS: usize = 32;
const MAX_STRING_SIZE: usize = 1 << 20;
const MAX_ARRAY_SIZE: usize = 10_000;
const MAX_MAP_SIZE: usize = 10_000;
const MAX_FUNCTIONS: usize = 64;

/// The engine every expression of a mapping is compiled and run on.
pub fn sandboxed_engine() -> Engine {
    // `new_raw` has no module resolver and no print/debug output; we add only the standard
    // library (strings, arithmetic, arrays, maps).
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FUNCTION_EXPR_DEPTH)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_functions(MAX_FUNCTIONS)
        .set_max_modules(0);
    // Refused at compile time rather than failing on some record later.
    for symbol in ["eval", "import", "export"] {
        engine.disable_symbol(symbol);
    }
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine
}

/// Compile an expression; the error is one line with rhai's position.
pub fn compile(engine: &Engine, source: &str) -> Result<AST, String> {
    engine.compile(source).map_err(|e| one_line(&e.to_string()))
}

/// The variables an expression sees for one record: each top-level field whose name is an
/// identifier, and the whole record as `record`. Built once per record, cloned per rule so
/// one rule cannot leave anything behind for the next.
pub fn record_scope(source: &Map<String, Value>) -> Scope<'static> {
    let mut scope = Scope::new();
    for (name, value) in source {
        // `record` and `value` are ours; a field of that name is still in `record`.
        if !is_identifier(name) || name == "record" || name == "value" {
            continue;
        }
        scope.push_constant_dynamic(name.clone(), to_dynamic(value));
    }
    scope.push_constant_dynamic("record", to_dynamic_map(source));
    scope
}

/// Run `ast` in a copy of `base`, with `value` (the `from` value) if the rule has one.
pub fn eval(
    engine: &Engine,
    ast: &AST,
    base: &Scope<'static>,
    value: Option<&Value>,
) -> Result<Value, String> {
    let mut scope = base.clone();
    if let Some(value) = value {
        scope.push_constant_dynamic("value", to_dynamic(value));
    }
    let result = engine
        .eval_ast_with_scope::<Dynamic>(&mut scope, ast)
        .map_err(|e| describe(&e))?;
    from_dynamic(&result)
}

fn to_dynamic(value: &Value) -> Dynamic {
    // serde_json values always convert (numbers beyond i64 become floats); unit is a safe
    // stand-in should that ever change.
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

fn to_dynamic_map(map: &Map<String, Value>) -> Dynamic {
    rhai::serde::to_dynamic(map).unwrap_or(Dynamic::UNIT)
}

fn from_dynamic(value: &Dynamic) -> Result<Value, String> {
    rhai::serde::from_dynamic::<Value>(value).map_err(|_| {
        format!(
            "`expr` returned a {}, which has no JSON form; return a string, number, bool, array, map or ()",
            value.type_name()
        )
    })
}

/// A runtime failure as one line that says what to change.
fn describe(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "`expr` was stopped after {MAX_OPERATIONS} operations (a loop that never ends?); simplify it"
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "`expr` built a value over the sandbox's limit ({what}); keep strings under {MAX_STRING_SIZE} bytes and arrays/maps under {MAX_ARRAY_SIZE} items"
        ),
        EvalAltResult::ErrorStackOverflow(_) => {
            format!("`expr` nests calls deeper than {MAX_CALL_LEVELS} levels; avoid deep recursion")
        }
        EvalAltResult::ErrorVariableNotFound(name, pos) => format!(
            "`expr` uses `{name}` ({pos}), which this record does not have; write `record.{name}` to get () when a field may be missing"
        ),
        EvalAltResult::ErrorRuntime(thrown, _) => {
            format!("`expr` threw: {}", one_line(&thrown.to_string()))
        }
        other => format!("`expr` failed: {}", one_line(&other.to_string())),
    }
}

/// rhai's identifier rule (ASCII letters, digits, `_`; not starting with a digit; not `_`).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    name != "_" && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
