//! A client for the simulators' own admin API (`/_sandbox/<platform>/…`), shared by every test
//! suite and benchmark that drives a sandbox: faults, counters, clocks, state dumps.

use serde_json::Value;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin {method} {url}: {source}")]
    Transport {
        method: &'static str,
        url: String,
        source: reqwest::Error,
    },
    #[error("admin {method} {url}: HTTP {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
}

/// Talks to one simulator's admin API, e.g. `AdminClient::new("http://127.0.0.1:8089", "dingtalk")`.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
}

impl AdminClient {
    /// `origin` is the simulator's `http://host:port`; `platform` is `dingtalk` or `kingdee`.
    pub fn new(origin: &str, platform: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{}/_sandbox/{platform}", origin.trim_end_matches('/')),
        }
    }

    /// `GET /_sandbox/<platform>/<path>`.
    pub async fn get(&self, path: &str) -> Result<Value, AdminError> {
        let url = format!("{}/{path}", self.base);
        let sent = self.http.get(&url).send().await;
        Self::answer("GET", url, sent).await
    }

    /// `POST /_sandbox/<platform>/<path>` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        let url = format!("{}/{path}", self.base);
        let sent = self.http.post(&url).json(body).send().await;
        Self::answer("POST", url, sent).await
    }

    /// A counter by its dotted path in `GET counters` (e.g. `calls.Save`,
    /// `errors_by_msgcode.14`, `tokens_issued`); 0 when absent.
    pub async fn counter(&self, dotted: &str) -> Result<u64, AdminError> {
        let counters = self.get("counters").await?;
        Ok(dotted
            .split('.')
            .try_fold(&counters, |v, k| v.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    async fn answer(
        method: &'static str,
        url: String,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, AdminError> {
        let resp = sent.map_err(|source| AdminError::Transport {
            method,
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|source| AdminError::Transport {
            method,
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(AdminError::Status {
                method,
                url,
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
