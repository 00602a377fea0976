//! The generic HTTP eHR target: one configurable REST call per record (upsert, disable), an
//! optional paged list for reconciliation, and the connection's auth (an `Authorization`
//! header and/or Standard Webhooks signatures).
//!
//! Settings, per entity (`[flows.<name>.options.users]` / `.departments`; `key` and `fields`
//! there belong to the mapping and are ignored here, except that `key` is the default key field
//! of listed items):
//!
//! ```toml
//! upsert = { method = "PUT", path = "/api/employees/{key}" }      # body: the mapped fields
//! disable = { method = "DELETE", path = "/api/employees/{key}" }  # or a PATCH with `body`
//! list = { path = "/api/employees", items = "/items", next = "/next_cursor", cursor_param = "cursor",
//!          limit_param = "limit", page_size = 200, key_field = "job_number",
//!          disabled_field = "active", disabled_when = false }
//! id_pointer = "/id"   # where the upsert answer (and a listed item) holds the target's id
//! ```
//!
//! Answers: 2xx → written (`created` when 201); 404 on disable → nothing to do; 401/403 →
//! permanent for the whole call; 408, 429 (Retry-After honoured) and 5xx → retryable; any other
//! 4xx → that record alone is rejected with the remote's reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Entity, OrgTarget, RecordOutcome, TargetError, TargetRecord, TargetRow};
use crate::config::HttpConnection;
use crate::webhook::WebhookSigner;

/// Requests to one target in flight at once within a batch (outcomes keep record order).
const CONCURRENCY: usize = 4;
/// The pacer's API group for every call of this target.
const PACER_GROUP: &str = "http";
/// A remote's reason is cut to this many characters in a rejection.
const REASON_MAX_CHARS: usize = 500;
/// Guard against a list endpoint that never stops paging.
const MAX_PAGES: usize = 100_000;

/// A target's settings are wrong: names the connection, the entity, the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection `{connection}`{}: `{key}`: {problem}; fix: {fix}", entity_label(*.entity))]
pub struct TargetConfigError {
    pub connection: String,
    /// The entity whose options are wrong; `None` for a setting of the connection itself.
    pub entity: Option<Entity>,
    /// The key, dotted from the entity's options table (e.g. `upsert.method`).
    pub key: String,
    pub problem: String,
    pub fix: String,
}

fn entity_label(entity: Option<Entity>) -> &'static str {
    match entity {
        Some(Entity::User) => ", options.users",
        Some(Entity::Department) => ", options.departments",
        None => "",
    }
}

impl TargetConfigError {
    pub(crate) fn new(
        connection: &str,
        entity: Option<Entity>,
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        TargetConfigError {
            connection: connection.to_owned(),
            entity,
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// The keys of an entity's options table that belong to the mapping, not to the target.
pub(crate) const MAPPING_KEYS: [&str; 2] = ["key", "fields"];

/// `upsert = { method, path }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertSettings {
    method: String,
    path: String,
}

/// `disable = { method, path, body? }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableSettings {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<Value>,
}

/// `list = { path, items, next, cursor_param, … }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSettings {
    #[serde(default = "default_list_method")]
    method: String,
    path: String,
    /// JSON pointer to the array of items in a page; empty: the page is the array.
    #[serde(default)]
    items: String,
    /// JSON pointer to the next page's cursor; absent: the list has one page.
    #[serde(default)]
    next: Option<String>,
    #[serde(default = "default_cursor_param")]
    cursor_param: String,
    #[serde(default)]
    limit_param: Option<String>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    key_field: Option<String>,
    #[serde(default)]
    disabled_field: Option<String>,
    /// The value of `disabled_field` that means "disabled" (`true` by default; `false` for a
    /// field such as `active`).
    #[serde(default = "default_disabled_when")]
    disabled_when: Value,
}

fn default_list_method() -> String {
    "GET".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_disabled_when() -> Value {
    Value::Bool(true)
}

/// A path with `{key}` placeholders, checked at construction.
#[derive(Debug, Clone)]
struct PathTemplate(String);

impl PathTemplate {
    fn render(&self, key: &str) -> String {
        self.0.replace("{key}", &urlencoding::encode(key))
    }
}

#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: PathTemplate,
}

#[derive(Debug, Clone)]
struct DisableCall {
    call: Call,
    /// Serialized once: the same bytes are signed and sent for every key.
    body: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct ListCall {
    path: String,
    items: String,
    next: Option<String>,
    cursor_param: String,
    limit: Option<(String, u32)>,
    key_field: String,
    disabled: Option<(String, Value)>,
}

/// Everything this target knows about one entity.
#[derive(Debug, Clone)]
struct EntityCalls {
    upsert: Call,
    disable: Option<DisableCall>,
    list: Option<ListCall>,
    id_pointer: Option<String>,
    /// The fields the mapping writes (`fields[].to`). A record sent without some of them left
    /// them to the target (master policy); a PUT would erase them, so they are read first.
    mapped: Vec<String>,
}

/// A generic REST eHR (or in-house system) as an [`OrgTarget`].
pub struct HttpTarget {
    connection: String,
    client: reqwest::Client,
    base_url: String,
    authorization: Option<HeaderValue>,
    signer: Option<WebhookSigner>,
    users: EntityCalls,
    departments: Option<EntityCalls>,
    pacer: Arc<dyn limits::Pacer>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("connection", &self.connection)
            .field("base_url", &self.base_url)
            .field("users", &self.users)
            .field("departments", &self.departments)
            .finish_non_exhaustive()
    }
}

/// One HTTP answer that was neither a transport failure nor a whole-call error status.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl HttpTarget {
    /// Builds the target from the connection and the `users` (required) and `departments`
    /// (optional) options tables. Nothing is sent until the first call.
    pub fn new(
        connection_name: &str,
        conn: &HttpConnection,
        departments: Option<&Value>,
        users: &Value,
        pacer: Arc<dyn limits::Pacer>,
    ) -> Result<HttpTarget, TargetConfigError> {
        let conn_err = |key: &str, problem: String, fix: &str| {
            TargetConfigError::new(connection_name, None, key, problem, fix)
        };
        let base_url = conn.base_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(url) => {
                return Err(conn_err(
                    "base_url",
                    format!("scheme `{}` is not http or https", url.scheme()),
                    "write base_url as http(s)://host[:port][/prefix]",
                ));
            }
            Err(e) => {
                return Err(conn_err(
                    "base_url",
                    format!("`{base_url}` is not a URL ({e})"),
                    "write base_url as http(s)://host[:port][/prefix]",
                ));
            }
        }
        let authorization = match &conn.auth_header {
            None => None,
            Some(secret) => {
                let mut value = HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
                    conn_err(
                        "auth_header",
                        "is not a valid HTTP header value".into(),
                        "use visible ASCII only, e.g. \"Bearer <token>\"",
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let signer = match &conn.hmac_secret {
            None => None,
            Some(secret) => Some(WebhookSigner::from_secret(secret.expose_secret()).map_err(
                |problem| {
                    conn_err(
                        "hmac_secret",
                        problem,
                        "give the Standard Webhooks secret as `whsec_<base64>` or as plain text",
                    )
                },
            )?),
        };
        let client = reqwest::Client::builder()
            .timeout(conn.timeout())
            .build()
            .map_err(|e| {
                conn_err(
                    "timeout_seconds",
                    format!("the HTTP client could not be built ({e})"),
                    "check the connection settings",
                )
            })?;
        let users = parse_entity(connection_name, Entity::User, users)?;
        let departments = departments
            .map(|d| parse_entity(connection_name, Entity::Department, d))
            .transpose()?;
        Ok(HttpTarget {
            connection: connection_name.to_owned(),
            client,
            base_url,
            authorization,
            signer,
            users,
            departments,
            pacer,
        })
    }

    fn calls(&self, entity: Entity) -> Result<&EntityCalls, TargetError> {
        match entity {
            Entity::User => Ok(&self.users),
            Entity::Department => self.departments.as_ref().ok_or_else(|| {
                TargetError::permanent(format!(
                    "connection `{}` has no settings for departments; fix: add an \
                     options.departments table with upsert/disable calls",
                    self.connection
                ))
            }),
        }
    }

    /// Sends one request through the pacer. Transport failures, 401/403, 408, 429 and 5xx
    /// become whole-call errors; every other answer is returned for the caller to judge.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, TargetError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.client.request(method.clone(), &url);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some(signer) = &self.signer {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            for (name, value) in signer.headers(&id, now, body.as_deref().unwrap_or_default()) {
                request = request.header(name, value);
            }
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(body);
        }
        let what = format!("{method} {url}");

        let permit = self.pacer.acquire(PACER_GROUP).await;
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>((status, retry_after, body))
        }
        .await;
        drop(permit);

        let (status, retry_after, body) = result.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            TargetError::retryable(format!(
                "connection `{}`: {what} {kind}: {}",
                self.connection,
                e.without_url()
            ))
        })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.pacer.throttled(PACER_GROUP, retry_after);
        } else {
            self.pacer.succeeded(PACER_GROUP);
        }
        let answer = Answer { status, body };
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(TargetError::permanent(format!(
                    "connection `{}`: {what} answered HTTP {}: {}; fix: check the connection's \
                     auth_header / hmac_secret and the account's permissions",
                    self.connection,
                    status.as_u16(),
                    answer.reason().1
                )))
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
                Err(TargetError::Retryable {
                    message: format!(
                        "connection `{}`: {what} answered HTTP {}",
                        self.connection,
                        status.as_u16()
                    ),
                    retry_after,
                })
            }
            s if s.is_server_error() => Err(TargetError::Retryable {
                message: format!(
                    "connection `{}`: {what} answered HTTP {}: {}",
                    self.connection,
                    s.as_u16(),
                    answer.reason().1
                ),
                retry_after,
            }),
            _ => Ok(answer),
        }
    }

    async fn upsert_one(
        &self,
        calls: &EntityCalls,
        record: &TargetRecord,
    ) -> Result<RecordOutcome, TargetError> {
        let path = calls.upsert.path.render(&record.key);
        let mut fields = record.fields.clone();
        // Fields the target is master of were left out of the record; a PUT replaces the whole
        // record, so keep the target's current values for them.
        if calls.upsert.method == Method::PUT
            && calls.mapped.iter().any(|f| !fields.contains_key(f))
        {
            let current = self.send(Method::GET, &path, &[], None).await?;
            if current.status.is_success()
                && let Ok(Value::Object(theirs)) = serde_json::from_slice::<Value>(&current.body)
            {
                for f in &calls.mapped {
                    if !fields.contains_key(f)
                        && let Some(v) = theirs.get(f)
                    {
                        fields.insert(f.clone(), v.clone());
                    }
                }
            }
        }
        let body = serde_json::to_vec(&fields).map_err(|e| {
            TargetError::permanent(format!("record {} cannot be serialized: {e}", record.key))
        })?;
        let answer = self
            .send(calls.upsert.method.clone(), &path, &[], Some(body))
            .await?;
        if answer.status.is_success() {
            let target_id = calls
                .id_pointer
                .as_deref()
                .and_then(|pointer| {
                    let json: Value = serde_json::from_slice(&answer.body).ok()?;
                    scalar_text(json.pointer(pointer)?)
                })
                .unwrap_or_else(|| {
                    if calls.id_pointer.is_some() {
                        tracing::warn!(
                            connection = %self.connection,
                            key = %record.key,
                            "the upsert answer holds no id at id_pointer; using the key"
                        );
                    }
                    record.key.clone()
                });
            return Ok(RecordOutcome::Written {
                target_id,
                created: answer.status == StatusCode::CREATED,
            });
        }
        self.per_record_refusal(&answer, "upsert")
    }

    async fn disable_one(
        &self,
        disable: &DisableCall,
        key: &str,
    ) -> Result<RecordOutcome, TargetError> {
        let path = disable.call.path.render(key);
        let answer = self
            .send(
                disable.call.method.clone(),
                &path,
                &[],
                disable.body.clone(),
            )
            .await?;
        // 404: the target does not hold the record, so there is nothing to disable.
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            return Ok(RecordOutcome::Written {
                target_id: key.to_owned(),
                created: false,
            });
        }
        self.per_record_refusal(&answer, "disable")
    }

    /// A 4xx refuses this record alone; anything else unexpected fails the call.
    fn per_record_refusal(&self, answer: &Answer, op: &str) -> Result<RecordOutcome, TargetError> {
        let (field, reason) = answer.reason();
        if answer.status.is_client_error() {
            Ok(RecordOutcome::Rejected {
                field,
                reason: format!("HTTP {}: {reason}", answer.status.as_u16()),
            })
        } else {
            Err(TargetError::permanent(format!(
                "connection `{}`: {op} answered an unexpected HTTP {}: {reason}",
                self.connection,
                answer.status.as_u16()
            )))
        }
    }

    async fn list_all(
        &self,
        list: &ListCall,
        id_pointer: Option<&str>,
        fields: &[String],
    ) -> Result<Vec<TargetRow>, TargetError> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = Vec::new();
            if let Some(c) = &cursor {
                query.push((list.cursor_param.clone(), c.clone()));
            }
            if let Some((param, size)) = &list.limit {
                query.push((param.clone(), size.to_string()));
            }
            let answer = self.send(Method::GET, &list.path, &query, None).await?;
            if !answer.status.is_success() {
                return Err(TargetError::permanent(format!(
                    "connection `{}`: list GET {} answered HTTP {}: {}; fix: check list.path",
                    self.connection,
                    list.path,
                    answer.status.as_u16(),
                    answer.reason().1
                )));
            }
            let page: Value = serde_json::from_slice(&answer.body).map_err(|e| {
                TargetError::permanent(format!(
                    "connection `{}`: list page is not JSON: {e}",
                    self.connection
                ))
            })?;
            let items = page
                .pointer(&list.items)
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    TargetError::permanent(format!(
                        "connection `{}`: list page has no array at items = \"{}\"; fix: point \
                         list.items at the array of records",
                        self.connection, list.items
                    ))
                })?;
            for (index, item) in items.iter().enumerate() {
                rows.push(self.row_from_item(list, id_pointer, fields, item, index)?);
            }
            let next = list
                .next
                .as_deref()
                .and_then(|pointer| page.pointer(pointer))
                .and_then(scalar_text)
                .filter(|c| !c.is_empty());
            match next {
                None => return Ok(rows),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(TargetError::permanent(format!(
                        "connection `{}`: list returned the same cursor `{next}` twice; fix: \
                         check list.next and list.cursor_param",
                        self.connection
                    )));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(TargetError::permanent(format!(
            "connection `{}`: list did not end within {MAX_PAGES} pages",
            self.connection
        )))
    }

    fn row_from_item(
        &self,
        list: &ListCall,
        id_pointer: Option<&str>,
        fields: &[String],
        item: &Value,
        index: usize,
    ) -> Result<TargetRow, TargetError> {
        let object = item.as_object().ok_or_else(|| {
            TargetError::permanent(format!(
                "connection `{}`: list item {index} is not an object",
                self.connection
            ))
        })?;
        let key = object
            .get(&list.key_field)
            .and_then(scalar_text)
            .ok_or_else(|| {
                TargetError::permanent(format!(
                    "connection `{}`: list item {index} has no key field `{}`; fix: set \
                     list.key_field",
                    self.connection, list.key_field
                ))
            })?;
        let disabled = list
            .disabled
            .as_ref()
            .is_some_and(|(field, when)| object.get(field).is_some_and(|v| loosely_equal(v, when)));
        let row_fields: Map<String, Value> = fields
            .iter()
            .filter_map(|f| object.get(f).map(|v| (f.clone(), v.clone())))
            .collect();
        Ok(TargetRow {
            key,
            target_id: id_pointer
                .and_then(|p| item.pointer(p))
                .and_then(scalar_text),
            disabled,
            fields: row_fields,
        })
    }
}

impl Answer {
    /// The remote's `field` (if it names one) and reason: its `error`/`message`/`msg`/`errmsg`
    /// text, else the body itself (cut).
    fn reason(&self) -> (Option<String>, String) {
        let json: Option<Value> = serde_json::from_slice(&self.body).ok();
        let field = json
            .as_ref()
            .and_then(|j| j.get("field"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let text = json
            .as_ref()
            .and_then(|j| {
                ["error", "message", "msg", "errmsg", "detail"]
                    .iter()
                    .find_map(|k| j.get(*k).and_then(Value::as_str))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        let text = if text.trim().is_empty() {
            self.status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_owned()
        } else {
            text
        };
        (field, text.chars().take(REASON_MAX_CHARS).collect())
    }
}

#[async_trait]
impl OrgTarget for HttpTarget {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn upsert(
        &self,
        entity: Entity,
        records: &[TargetRecord],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        let calls = self.calls(entity)?;
        // The futures are built first: a closure inside the stream would be higher-ranked over
        // the record's lifetime, which the `Send` bound of async_trait cannot prove.
        let calls: Vec<_> = records
            .iter()
            .map(|record| self.upsert_one(calls, record))
            .collect();
        futures::stream::iter(calls)
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn disable(
        &self,
        entity: Entity,
        keys: &[String],
    ) -> Result<Vec<RecordOutcome>, TargetError> {
        let calls = self.calls(entity)?;
        let disable = calls.disable.as_ref().ok_or_else(|| {
            TargetError::permanent(format!(
                "connection `{}`: no disable call for {}; fix: add disable = {{ method = \
                 \"DELETE\", path = \"…/{{key}}\" }} to its options",
                self.connection,
                entity.as_str()
            ))
        })?;
        let calls: Vec<_> = keys
            .iter()
            .map(|key| self.disable_one(disable, key))
            .collect();
        futures::stream::iter(calls)
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn read_all(
        &self,
        entity: Entity,
        fields: &[String],
    ) -> Result<Option<Vec<TargetRow>>, TargetError> {
        let calls = self.calls(entity)?;
        match &calls.list {
            None => Ok(None),
            Some(list) => self
                .list_all(list, calls.id_pointer.as_deref(), fields)
                .await
                .map(Some),
        }
    }
}

/// A JSON string or number as text (ids and keys are often numbers in JSON).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Equality that tolerates the usual encodings of a flag: `true`/`1`/`"true"`/`"1"`.
pub(crate) fn loosely_equal(actual: &Value, expected: &Value) -> bool {
    if actual == expected {
        return true;
    }
    let as_flag = |v: &Value| match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().and_then(|i| match i {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => Some(true),
            "false" | "f" | "0" | "no" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    };
    match (as_flag(actual), as_flag(expected)) {
        (Some(a), Some(b)) => a == b,
        _ => scalar_text(actual).is_some_and(|a| scalar_text(expected).is_some_and(|b| a == b)),
    }
}

/// `Retry-After`: delay seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

fn parse_entity(
    connection: &str,
    entity: Entity,
    options: &Value,
) -> Result<EntityCalls, TargetConfigError> {
    let err = |key: &str, problem: String, fix: &str| {
        TargetConfigError::new(connection, Some(entity), key, problem, fix)
    };
    let table = options.as_object().ok_or_else(|| {
        err(
            "",
            format!("expected a table, found {}", json_kind(options)),
            "write the entity's options as a TOML table with upsert/disable/list",
        )
    })?;
    const KNOWN: [&str; 4] = ["upsert", "disable", "list", "id_pointer"];
    if let Some(unknown) = table
        .keys()
        .find(|k| !KNOWN.contains(&k.as_str()) && !MAPPING_KEYS.contains(&k.as_str()))
    {
        return Err(err(
            unknown,
            "unknown key".into(),
            "the HTTP target knows upsert, disable, list and id_pointer (key and fields belong \
             to the mapping)",
        ));
    }
    let section = |name: &str| table.get(name).cloned();

    let upsert: UpsertSettings = match section("upsert") {
        None => {
            return Err(err(
                "upsert",
                "missing".into(),
                "add upsert = { method = \"PUT\", path = \"/api/employees/{key}\" }",
            ));
        }
        Some(v) => serde_json::from_value(v).map_err(|e| {
            err(
                "upsert",
                e.to_string(),
                "write upsert = { method = \"PUT\", path = \"/api/employees/{key}\" }",
            )
        })?,
    };
    let upsert = Call {
        method: parse_method(&upsert.method).ok_or_else(|| {
            err(
                "upsert.method",
                format!("`{}` is not an HTTP method for writing", upsert.method),
                "use PUT, POST or PATCH",
            )
        })?,
        path: parse_path(&upsert.path, true)
            .map_err(|problem| err("upsert.path", problem, PATH_FIX))?,
    };

    let disable = match section("disable") {
        None => None,
        Some(v) => {
            let d: DisableSettings = serde_json::from_value(v).map_err(|e| {
                err(
                    "disable",
                    e.to_string(),
                    "write disable = { method = \"DELETE\", path = \"/api/employees/{key}\" } or \
                     { method = \"PATCH\", path = \"…\", body = { active = false } }",
                )
            })?;
            let method = parse_method(&d.method)
                .or_else(|| (d.method.eq_ignore_ascii_case("DELETE")).then_some(Method::DELETE))
                .ok_or_else(|| {
                    err(
                        "disable.method",
                        format!("`{}` is not an HTTP method for disabling", d.method),
                        "use DELETE, PATCH, PUT or POST",
                    )
                })?;
            let body = d
                .body
                .map(|b| serde_json::to_vec(&b))
                .transpose()
                .map_err(|e| err("disable.body", e.to_string(), "write body as a TOML table"))?;
            Some(DisableCall {
                call: Call {
                    method,
                    path: parse_path(&d.path, true)
                        .map_err(|problem| err("disable.path", problem, PATH_FIX))?,
                },
                body,
            })
        }
    };

    let id_pointer = match section("id_pointer") {
        None => None,
        Some(Value::String(p)) if p.starts_with('/') => Some(p),
        Some(other) => {
            return Err(err(
                "id_pointer",
                format!("expected a JSON pointer string, found {other}"),
                "write id_pointer = \"/id\" (a JSON pointer starting with /)",
            ));
        }
    };

    let list = match section("list") {
        None => None,
        Some(v) => {
            let l: ListSettings = serde_json::from_value(v).map_err(|e| {
                err(
                    "list",
                    e.to_string(),
                    "write list = { path = \"/api/employees\", items = \"/items\", next = \
                     \"/next_cursor\", cursor_param = \"cursor\" }",
                )
            })?;
            if !l.method.eq_ignore_ascii_case("GET") {
                return Err(err(
                    "list.method",
                    format!("`{}`: only GET is supported for listing", l.method),
                    "remove list.method or set it to \"GET\"",
                ));
            }
            let path = parse_path(&l.path, false)
                .map_err(|problem| err("list.path", problem, PATH_FIX))?;
            for (key, pointer) in [
                ("list.items", Some(&l.items)),
                ("list.next", l.next.as_ref()),
            ] {
                if let Some(p) = pointer
                    && !p.is_empty()
                    && !p.starts_with('/')
                {
                    return Err(err(
                        key,
                        format!("`{p}` is not a JSON pointer"),
                        "start it with / (e.g. \"/items\"), or leave items empty for a page \
                         that is the array itself",
                    ));
                }
            }
            let key_field = match l.key_field {
                Some(k) => k,
                None => match table.get("key") {
                    Some(Value::String(k)) => k.clone(),
                    _ => {
                        return Err(err(
                            "list.key_field",
                            "missing, and the mapping's `key` is not a field name".into(),
                            "set list.key_field to the item field that holds the key",
                        ));
                    }
                },
            };
            let limit = match (l.limit_param, l.page_size) {
                (Some(param), Some(size)) if size > 0 => Some((param, size)),
                (None, None) => None,
                _ => {
                    return Err(err(
                        "list.page_size",
                        "limit_param and page_size go together (page_size > 0)".into(),
                        "set both, e.g. limit_param = \"limit\", page_size = 200, or neither",
                    ));
                }
            };
            Some(ListCall {
                path: path.0,
                items: l.items,
                next: l.next,
                cursor_param: l.cursor_param,
                limit,
                key_field,
                disabled: l.disabled_field.map(|f| (f, l.disabled_when)),
            })
        }
    };

    let mapped = table
        .get("fields")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| Some(r.get("to")?.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(EntityCalls {
        upsert,
        disable,
        list,
        id_pointer,
        mapped,
    })
}

const PATH_FIX: &str = "write an absolute path after base_url, e.g. \"/api/employees/{key}\"; {key} is the only \
     placeholder";

/// The methods that may carry a record (DELETE is accepted for disable only).
fn parse_method(name: &str) -> Option<Method> {
    match name.to_ascii_uppercase().as_str() {
        "PUT" => Some(Method::PUT),
        "POST" => Some(Method::POST),
        "PATCH" => Some(Method::PATCH),
        _ => None,
    }
}

fn parse_path(path: &str, key_allowed: bool) -> Result<PathTemplate, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` does not start with /"));
    }
    // Every `{…}` must be `{key}`, and only where a key exists.
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            return Err(format!("`{path}` has an unclosed {{"));
        };
        let placeholder = &after[..=close];
        if placeholder != "{key}" {
            return Err(format!("`{path}` has an unknown placeholder {placeholder}"));
        }
        if !key_allowed {
            return Err(format!("`{path}`: a list path has no {{key}}"));
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{path}` has a stray }}"));
    }
    Ok(PathTemplate(path.to_owned()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_and_keys_encoded() {
        let p = parse_path("/api/employees/{key}", true).expect("valid");
        assert_eq!(p.render("张三/1"), "/api/employees/%E5%BC%A0%E4%B8%89%2F1");
        assert!(parse_path("api/x", true).is_err());
        assert!(parse_path("/api/{id}", true).is_err());
        assert!(parse_path("/api/{key}", false).is_err());
        assert!(parse_path("/api/{key", true).is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn flags_compare_loosely() {
        assert!(loosely_equal(&Value::from(0), &Value::Bool(false)));
        assert!(loosely_equal(&Value::from("true"), &Value::Bool(true)));
        assert!(!loosely_equal(&Value::Bool(true), &Value::Bool(false)));
        assert!(loosely_equal(&Value::from("left"), &Value::from("left")));
    }
}
