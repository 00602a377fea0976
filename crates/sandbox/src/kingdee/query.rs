//! ExecuteBillQuery / BillQuery (protocol §2.1, §2.3, §5): `FieldKeys`, a `FilterString`
//! subset (`=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`, `like`, `not like`, `in`, `and`, `or`,
//! parentheses), `OrderString`, `StartRow` / `Limit` (capped) / `TopRowCount`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::envelope::{KdError, msg};
use super::forms::{self, FieldType, FormDef};
use super::store::{Db, Record, entry_rows, get_ci, ref_number, scalar_string};

/// A resolved column.
#[derive(Debug, Clone)]
enum Col {
    Id,
    Number,
    DocStatus,
    ForbidStatus,
    Created,
    Modified,
    Header(String, FieldType),
    /// `Ref.Sub`: a field of the referenced record.
    HeaderSub(String, &'static str, String),
    EntryId(&'static str),
    Entry(&'static str, String, FieldType),
    EntrySub(&'static str, String, &'static str, String),
}

impl Col {
    fn entry(&self) -> Option<&'static str> {
        match self {
            Col::EntryId(e) | Col::Entry(e, _, _) | Col::EntrySub(e, _, _, _) => Some(e),
            _ => None,
        }
    }
}

fn unknown(key: &str) -> KdError {
    KdError::new(msg::NOT_FOUND, format!("元数据中标识为{key}的字段不存在")).field(key)
}

fn resolve(form: &FormDef, key: &str) -> Result<Col, KdError> {
    let key = key.trim();
    if let Some((base, sub)) = key.split_once('.') {
        let target = |ty: FieldType| match ty {
            FieldType::Ref(t) => Some(t),
            _ => None,
        };
        if let Some(def) = form.field(base)
            && let Some(t) = target(def.ty)
        {
            check_sub(t, sub, key)?;
            return Ok(Col::HeaderSub(def.key.to_owned(), t, sub.to_owned()));
        }
        if let Some((entry, def)) = form.entry_field(base)
            && let Some(t) = target(def.ty)
        {
            check_sub(t, sub, key)?;
            return Ok(Col::EntrySub(
                entry.key,
                def.key.to_owned(),
                t,
                sub.to_owned(),
            ));
        }
        return Err(unknown(key));
    }
    let lower = key.to_ascii_lowercase();
    if form.is_pk(key) {
        return Ok(Col::Id);
    }
    if key.eq_ignore_ascii_case(form.number_field) {
        return Ok(Col::Number);
    }
    match lower.as_str() {
        "fdocumentstatus" if form.has_status() => return Ok(Col::DocStatus),
        "fforbidstatus" if form.kind == forms::FormKind::BaseData => return Ok(Col::ForbidStatus),
        "fcreatedate" => return Ok(Col::Created),
        "fmodifydate" => return Ok(Col::Modified),
        _ => {}
    }
    if let Some(def) = form.field(key) {
        return Ok(Col::Header(def.key.to_owned(), def.ty));
    }
    for e in form.entries {
        if lower == "fentryid" || lower == format!("{}_fentryid", e.key.to_ascii_lowercase()) {
            return Ok(Col::EntryId(e.key));
        }
    }
    if let Some((entry, def)) = form.entry_field(key) {
        return Ok(Col::Entry(entry.key, def.key.to_owned(), def.ty));
    }
    if key.starts_with("F_") {
        return Ok(Col::Header(key.to_owned(), FieldType::Text));
    }
    Err(unknown(key))
}

fn check_sub(target: &str, sub: &str, full: &str) -> Result<(), KdError> {
    let Some(t) = forms::form(target) else {
        return Err(unknown(full));
    };
    if t.is_pk(sub)
        || sub.eq_ignore_ascii_case(t.number_field)
        || sub.eq_ignore_ascii_case("FNumber")
        || t.field(sub).is_some()
    {
        Ok(())
    } else {
        Err(unknown(full))
    }
}

/// One row to evaluate: a record and, when entry columns are involved, one of its entry rows.
struct Row<'a> {
    record: &'a Record,
    entry: Option<Map<String, Value>>,
}

fn scalar_of(db: &Db, ty: FieldType, v: Option<&Value>) -> Value {
    match (ty, v) {
        (_, None) => Value::Null,
        (FieldType::Ref(target), Some(v)) => v
            .as_object()
            .and_then(ref_number)
            .and_then(|n| db.id_by_number(target, &n))
            .map_or(Value::from(0), Value::from),
        (_, Some(v)) => v.clone(),
    }
}

fn sub_value(db: &Db, target: &'static str, sub: &str, v: Option<&Value>) -> Value {
    let Some(number) = v.and_then(Value::as_object).and_then(ref_number) else {
        return Value::Null;
    };
    let (Some(tform), Some(r)) = (forms::form(target), db.record_by_number(target, &number)) else {
        return Value::Null;
    };
    if tform.is_pk(sub) {
        return Value::from(r.id);
    }
    if sub.eq_ignore_ascii_case(tform.number_field) || sub.eq_ignore_ascii_case("FNumber") {
        return Value::String(r.number.clone());
    }
    match tform.field(sub) {
        Some(def) => match def.ty {
            FieldType::Ref(t2) => sub_value(db, t2, "FNumber", r.fields.get(def.key)),
            _ => r.fields.get(def.key).cloned().unwrap_or(Value::Null),
        },
        None => Value::Null,
    }
}

fn value(db: &Db, col: &Col, row: &Row) -> Value {
    let r = row.record;
    match col {
        Col::Id => Value::from(r.id),
        Col::Number => Value::String(r.number.clone()),
        Col::DocStatus => Value::String(r.status.to_string()),
        Col::ForbidStatus => Value::String(r.forbid.to_string()),
        Col::Created => Value::String(r.created.clone()),
        Col::Modified => Value::String(r.modified.clone()),
        Col::Header(k, ty) => scalar_of(db, *ty, r.fields.get(k)),
        Col::HeaderSub(k, t, sub) => sub_value(db, t, sub, r.fields.get(k)),
        Col::EntryId(_) => row
            .entry
            .as_ref()
            .and_then(|e| e.get("FEntryID").cloned())
            .unwrap_or(Value::Null),
        Col::Entry(_, k, ty) => scalar_of(db, *ty, row.entry.as_ref().and_then(|e| e.get(k))),
        Col::EntrySub(_, k, t, sub) => {
            sub_value(db, t, sub, row.entry.as_ref().and_then(|e| e.get(k)))
        }
    }
}

// ---- FilterString ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("字符串缺少结束引号".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '=' | '<' | '>' | '!' => {
                let mut op = c.to_string();
                if let Some(&n) = chars.get(i + 1)
                    && matches!(n, '=' | '>')
                    && !(c == '=' || (c == '>' && n == '>'))
                {
                    op.push(n);
                    i += 1;
                }
                i += 1;
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("无法识别的字符“{other}”")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Col, String, Value),
    Like(Col, String, bool),
    In(Col, Vec<Value>, bool),
    IsNull(Col, bool),
    True,
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    form: &'a FormDef,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }
    fn or(&mut self) -> Result<Expr, KdError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, KdError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, KdError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err(bad_filter("缺少右括号"));
            }
            return Ok(e);
        }
        self.comparison()
    }
    fn literal(&mut self) -> Result<Value, KdError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Num(n)) => Ok(n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .unwrap_or(Value::String(n))),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("null") => Ok(Value::Null),
            other => Err(bad_filter(&format!("此处需要一个值，实际为{other:?}"))),
        }
    }
    fn comparison(&mut self) -> Result<Expr, KdError> {
        let Some(Tok::Ident(field)) = self.next() else {
            return Err(bad_filter("此处需要一个字段标识"));
        };
        let col = resolve(self.form, &field)?;
        let negate = self.keyword("not");
        if negate {
            self.pos += 1;
        }
        if self.keyword("like") {
            self.pos += 1;
            let Value::String(p) = self.literal()? else {
                return Err(bad_filter("like 后需要字符串"));
            };
            return Ok(Expr::Like(col, p, negate));
        }
        if self.keyword("in") {
            self.pos += 1;
            if self.next() != Some(Tok::LParen) {
                return Err(bad_filter("in 后需要左括号"));
            }
            let mut items = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                items.push(self.literal()?);
            }
            if self.next() != Some(Tok::RParen) {
                return Err(bad_filter("缺少右括号"));
            }
            return Ok(Expr::In(col, items, negate));
        }
        if self.keyword("is") {
            self.pos += 1;
            let not = self.keyword("not");
            if not {
                self.pos += 1;
            }
            if !self.keyword("null") {
                return Err(bad_filter("is 后需要 null"));
            }
            self.pos += 1;
            return Ok(Expr::IsNull(col, not));
        }
        match self.next() {
            Some(Tok::Op(op)) => {
                let v = self.literal()?;
                Ok(Expr::Cmp(col, op, v))
            }
            other => Err(bad_filter(&format!("此处需要比较运算符，实际为{other:?}"))),
        }
    }
}

fn bad_filter(detail: &str) -> KdError {
    KdError::new(
        msg::PARAMETER,
        format!("过滤条件FilterString语法错误：{detail}"),
    )
    .field("FilterString")
}

fn parse_filter(form: &FormDef, s: &str) -> Result<Expr, KdError> {
    if s.trim().is_empty() {
        return Ok(Expr::True);
    }
    let toks = tokenize(s).map_err(|e| bad_filter(&e))?;
    let mut p = Parser { toks, pos: 0, form };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(bad_filter("多余的内容"));
    }
    Ok(e)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => scalar_string(other).unwrap_or_else(|| other.to_string()),
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => {
            let (x, y) = (text(a), text(b));
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) if a.is_number() || b.is_number() => {
                    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
                }
                _ => x.cmp(&y),
            }
        }
    }
}

fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => v
                .split_first()
                .is_some_and(|(x, vr)| x.to_lowercase().eq(c.to_lowercase()) && go(vr, rest)),
        }
    }
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&v, &p)
}

fn eval(db: &Db, e: &Expr, row: &Row) -> bool {
    match e {
        Expr::True => true,
        Expr::And(a, b) => eval(db, a, row) && eval(db, b, row),
        Expr::Or(a, b) => eval(db, a, row) || eval(db, b, row),
        Expr::Not(a) => !eval(db, a, row),
        Expr::Cmp(col, op, lit) => {
            let v = value(db, col, row);
            let ord = compare(&v, lit);
            match op.as_str() {
                "=" => ord == Ordering::Equal,
                "<>" | "!=" => ord != Ordering::Equal,
                "<" => ord == Ordering::Less,
                "<=" => ord != Ordering::Greater,
                ">" => ord == Ordering::Greater,
                ">=" => ord != Ordering::Less,
                _ => false,
            }
        }
        Expr::Like(col, p, neg) => like(&text(&value(db, col, row)), p) != *neg,
        Expr::In(col, items, neg) => {
            let v = value(db, col, row);
            items.iter().any(|i| compare(&v, i) == Ordering::Equal) != *neg
        }
        Expr::IsNull(col, not) => {
            let v = value(db, col, row);
            (v.is_null() || v == Value::String(String::new())) != *not
        }
    }
}

fn expr_entries(e: &Expr, out: &mut Vec<&'static str>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            expr_entries(a, out);
            expr_entries(b, out);
        }
        Expr::Not(a) => expr_entries(a, out),
        Expr::Cmp(c, _, _) | Expr::Like(c, _, _) | Expr::In(c, _, _) | Expr::IsNull(c, _) => {
            out.extend(c.entry())
        }
        Expr::True => {}
    }
}

/// The query result before shaping: the column keys as the caller wrote them and the rows.
pub struct QueryResult {
    pub keys: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

fn int_param(data: &Map<String, Value>, key: &str) -> Option<i64> {
    get_ci(data, key)
        .and_then(scalar_string)
        .and_then(|s| s.trim().parse().ok())
}

/// Runs a query. `cap` is the server's `Limit` cap (2000 by default, protocol §5).
pub fn run(db: &Db, data: &Map<String, Value>, cap: usize) -> Result<QueryResult, KdError> {
    let form_id = get_ci(data, "FormId")
        .and_then(scalar_string)
        .unwrap_or_default();
    if form_id.trim().is_empty() {
        return Err(KdError::new(msg::FORM_KEY_EMPTY, "表单标识FormId不能为空。").field("FormId"));
    }
    let Some(form) = forms::form(&form_id) else {
        return Err(
            KdError::new(msg::EXCEPTION, format!("业务对象不存在：{form_id}")).field("FormId"),
        );
    };
    let keys: Vec<String> = get_ci(data, "FieldKeys")
        .and_then(scalar_string)
        .unwrap_or_default()
        .split(',')
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(KdError::new(msg::PARAMETER, "查询字段FieldKeys不能为空。").field("FieldKeys"));
    }
    let cols = keys
        .iter()
        .map(|k| resolve(form, k))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = match get_ci(data, "FilterString") {
        Some(Value::String(s)) => parse_filter(form, s)?,
        Some(Value::Array(conds)) => conditions_filter(form, conds)?,
        _ => Expr::True,
    };
    let mut order: Vec<(Col, bool)> = Vec::new();
    if let Some(s) = get_ci(data, "OrderString").and_then(Value::as_str) {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split_whitespace();
            let key = it.next().unwrap_or_default();
            let desc = it.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
            order.push((resolve(form, key)?, desc));
        }
    }
    let mut entries: Vec<&'static str> = cols.iter().filter_map(Col::entry).collect();
    expr_entries(&filter, &mut entries);
    entries.extend(order.iter().filter_map(|(c, _)| c.entry()));
    let entry = entries.first().copied();

    let Some(fdata) = db.data(form.id) else {
        return Ok(QueryResult {
            keys,
            rows: Vec::new(),
        });
    };
    let mut rows: Vec<Row> = Vec::new();
    for r in fdata.records.values() {
        match entry {
            None => rows.push(Row {
                record: r,
                entry: None,
            }),
            Some(ek) => {
                let es = entry_rows(&r.fields, ek);
                if es.is_empty() {
                    rows.push(Row {
                        record: r,
                        entry: None,
                    });
                }
                rows.extend(es.into_iter().map(|e| Row {
                    record: r,
                    entry: Some(e),
                }));
            }
        }
    }
    rows.retain(|row| eval(db, &filter, row));
    if !order.is_empty() {
        rows.sort_by(|a, b| {
            for (col, desc) in &order {
                let o = compare(&value(db, col, a), &value(db, col, b));
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let top = int_param(data, "TopRowCount").filter(|n| *n > 0);
    if let Some(top) = top {
        rows.truncate(usize::try_from(top).unwrap_or(usize::MAX));
    }
    let start = int_param(data, "StartRow")
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let limit = int_param(data, "Limit")
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .map_or(cap, |n| n.min(cap));
    let out = rows
        .iter()
        .skip(start)
        .take(limit)
        .map(|row| cols.iter().map(|c| value(db, c, row)).collect())
        .collect();
    Ok(QueryResult { keys, rows: out })
}

/// `FilterString` as an array of `{Left, FieldName, Compare, Value, Right, Logic}` (◐ in the
/// protocol notes). `Compare` is taken as an operator text (`=`, `<>`, `like`, …) or the
/// numeric codes 67 (=), 83 (<>), 17 (like); `Logic` 0 = and, 1 = or.
fn conditions_filter(form: &FormDef, conds: &[Value]) -> Result<Expr, KdError> {
    let mut text_filter = String::new();
    for (i, c) in conds.iter().enumerate() {
        let Some(c) = c.as_object() else { continue };
        let g = |k: &str| get_ci(c, k).and_then(scalar_string).unwrap_or_default();
        if i > 0 {
            text_filter.push_str(
                if g("Logic") == "1" || g("Logic").eq_ignore_ascii_case("or") {
                    " or "
                } else {
                    " and "
                },
            );
        }
        let op = match g("Compare").as_str() {
            "67" | "" => "=".to_owned(),
            "83" => "<>".to_owned(),
            "17" => "like".to_owned(),
            other => other.to_owned(),
        };
        let v = g("Value").replace('\'', "''");
        let v = if op.eq_ignore_ascii_case("like") && !v.contains('%') {
            format!("%{v}%")
        } else {
            v
        };
        text_filter.push_str(&format!(
            "{}{} {} '{}'{}",
            g("Left"),
            g("FieldName"),
            op,
            v,
            g("Right")
        ));
    }
    parse_filter(form, &text_filter)
}
