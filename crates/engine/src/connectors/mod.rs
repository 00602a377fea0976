//! Clients built from configured connections, each paced by its connection's limiter, and a
//! probe per connection (`dingbridge check`): can we authenticate and make one cheap call?

use std::sync::Arc;
use std::time::{Duration, Instant};

use dingtalk::{Credentials, DingTalkClient, DingTalkConfig};
use kingdee::{AuthMode, KingdeeClient, KingdeeConfig, QueryRequest};
use limits::Pacer;
use secrecy::ExposeSecret;

use crate::config::{
    Connection, ConnectionSettings, DingTalkConnection, KingdeeAuth, KingdeeConnection,
};

/// A connection whose client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("connection `{connection}`: {message}")]
pub struct ConnectorError {
    pub connection: String,
    pub message: String,
}

fn err(connection: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError {
        connection: connection.to_owned(),
        message: e.to_string(),
    }
}

/// The client settings of a DingTalk connection (shared by the API client and the Stream client).
pub fn dingtalk_config(
    name: &str,
    c: &DingTalkConnection,
) -> Result<DingTalkConfig, ConnectorError> {
    let credentials = Credentials::new(c.app_key.clone(), c.app_secret.expose_secret().to_owned());
    let mut cfg = DingTalkConfig::new(c.corp_id.clone(), credentials)
        .with_bases(&c.oapi_base_url, &c.api_base_url)
        .map_err(|e| err(name, e))?
        .with_agent_id(c.agent_id);
    if let (Some(token), Some(key)) = (&c.callback_token, &c.encoding_aes_key) {
        cfg = cfg.with_callback(
            token.expose_secret().to_owned(),
            key.expose_secret().to_owned(),
            c.app_key.clone(),
        );
    }
    Ok(cfg)
}

pub fn dingtalk_client(
    name: &str,
    c: &DingTalkConnection,
    pacer: Arc<dyn Pacer>,
) -> Result<DingTalkClient, ConnectorError> {
    DingTalkClient::builder(dingtalk_config(name, c)?)
        .pacer(pacer)
        .build()
        .map_err(|e| err(name, e))
}

/// The callback crypto of a DingTalk connection, when it has a callback token and
/// EncodingAESKey. The owner key is the AppKey: console subscriptions of internal apps encrypt
/// with it (protocol §5.1).
pub fn dingtalk_callback_crypto(
    name: &str,
    c: &DingTalkConnection,
) -> Result<Option<dingtalk::crypto::CallbackCrypto>, ConnectorError> {
    match (&c.callback_token, &c.encoding_aes_key) {
        (Some(token), Some(key)) => dingtalk::crypto::CallbackCrypto::new(
            token.expose_secret().to_owned(),
            key.expose_secret(),
            c.app_key.clone(),
        )
        .map(Some)
        .map_err(|e| err(name, format!("encoding_aes_key: {e}"))),
        _ => Ok(None),
    }
}

pub fn kingdee_client(
    name: &str,
    c: &KingdeeConnection,
    pacer: Arc<dyn Pacer>,
) -> Result<KingdeeClient, ConnectorError> {
    let auth = match c.auth {
        KingdeeAuth::Signature => AuthMode::SignatureHeaders,
        KingdeeAuth::LoginBySign => AuthMode::LoginBySign,
        KingdeeAuth::LoginBySignSha1 => AuthMode::LoginBySignSha1,
        KingdeeAuth::LoginByAppSecret => AuthMode::LoginByAppSecret,
        KingdeeAuth::ValidateUser => AuthMode::ValidateUser,
    };
    let mut cfg = KingdeeConfig::new(
        &c.base_url,
        c.acct_id.clone(),
        c.user_name.clone(),
        c.app_id.clone(),
        c.app_secret.clone(),
    )
    .map_err(|e| err(name, e))?
    .with_auth(auth)
    .with_lcid(c.lcid);
    if let Some(p) = &c.password {
        cfg = cfg.with_password(p.clone());
    }
    if let Some(org) = &c.org_number {
        cfg = cfg.with_org_num(org.clone());
    }
    KingdeeClient::builder(cfg)
        .pacer(pacer)
        .build()
        .map_err(|e| err(name, e))
}

/// What probing one connection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Authenticated and answered; the text says what was tried.
    Ok { detail: String, millis: u128 },
    /// Could not authenticate or reach it; the text is the remote's or the transport's answer.
    Failed { detail: String },
    /// This kind of connection has no probe yet.
    NotProbed { reason: String },
}

/// An HTTP system answers its base URL (with the configured `Authorization`): any answer but
/// 401/403 and 5xx shows it is there and takes our credentials.
async fn probe_http(c: &crate::config::HttpConnection) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(c.timeout())
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(&c.base_url);
    if let Some(auth) = &c.auth_header {
        req = req.header("authorization", auth.expose_secret());
    }
    let status = req.send().await.map_err(|e| e.to_string())?.status();
    match status.as_u16() {
        401 | 403 => Err(format!(
            "HTTP {status}: the credentials were refused; check auth_header"
        )),
        s if s >= 500 => Err(format!("HTTP {status}: the system is not well")),
        _ => Ok(format!("answered HTTP {status}")),
    }
}

/// Authenticate and make one cheap read, within `timeout`.
pub async fn probe(conn: &Connection, pacer: Arc<dyn Pacer>, timeout: Duration) -> ProbeOutcome {
    let started = Instant::now();
    let attempt = async {
        match &conn.settings {
            ConnectionSettings::DingTalk(c) => {
                let client = dingtalk_client(&conn.name, c, pacer).map_err(|e| e.to_string())?;
                client.access_token().await.map_err(|e| e.to_string())?;
                Ok(Some("access token issued".to_owned()))
            }
            ConnectionSettings::Kingdee(c) => {
                let client = kingdee_client(&conn.name, c, pacer).map_err(|e| e.to_string())?;
                client.login().await.map_err(|e| e.to_string())?;
                let mut q = QueryRequest::new("BD_Department", ["FNumber"]);
                q.limit = 1;
                client
                    .execute_bill_query(&q)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some("authenticated; BD_Department readable".to_owned()))
            }
            ConnectionSettings::Sql(c) => {
                crate::orgsync::target::sql::SqlTarget::probe(c.url.expose_secret())
                    .await
                    .map(Some)
            }
            ConnectionSettings::Http(c) => probe_http(c).await.map(Some),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(Some(detail))) => ProbeOutcome::Ok {
            detail,
            millis: started.elapsed().as_millis(),
        },
        Ok(Ok(None)) => ProbeOutcome::NotProbed {
            reason: "no probe for this kind of connection".into(),
        },
        Ok(Err(detail)) => ProbeOutcome::Failed { detail },
        Err(_) => ProbeOutcome::Failed {
            detail: format!("no answer within {} s", timeout.as_secs()),
        },
    }
}
