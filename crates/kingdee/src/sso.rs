//! Third-party single sign-on links (第三方系统单点登录, protocol §4): the signed `ud=` argument
//! for the HTML5 (and `lightstartapp` for `openmode=Single`) and Silverlight entries, V4 SHA-256
//! and V2/V3 SHA-1 `signeddata`, `permitcount`, the target form/bill, and the SSO logout call.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use url::Url;

use crate::client::{Body, KingdeeClient};
use crate::config::KingdeeConfig;
use crate::envelope::{find_status, parse_body};
use crate::error::KingdeeError;
use crate::ids::FormId;
use crate::sign::{HashAlg, sorted_hash};

/// Service of the SSO logout. ◐ [YIKD `SSOHelper.GetSSOLogoutap0StrV4`] (§4.7)
pub const SSO_LOGOUT_SERVICE: &str =
    "Kingdee.BOS.ServiceFacade.ServicesStub.User.UserService.LogoutByOtherSystem";
/// Pacer group of SSO calls.
pub const SSO_GROUP: &str = "sso";

/// SSO protocol version (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsoVersion {
    /// V2 (PT133705 7.3.1219.3): SHA-1.
    V2,
    /// V3 (2021-10 patch): SHA-1, per-user restriction, `permitcount`.
    V3,
    /// V4 (2022-05 patch): SHA-256.
    #[default]
    V4,
}

impl SsoVersion {
    /// The hash of `signeddata`: SHA-1 for V1–V3, SHA-256 for V4. [KD-SSO-V4] (§4.4)
    pub fn hash(self) -> HashAlg {
        match self {
            SsoVersion::V2 | SsoVersion::V3 => HashAlg::Sha1,
            SsoVersion::V4 => HashAlg::Sha256,
        }
    }
}

/// `formtype` (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormType {
    /// Empty: a bill when `formid` is set.
    #[default]
    Unspecified,
    /// `bill`.
    Bill,
    /// `list`.
    List,
    /// `wnreport`.
    WnReport,
    /// `sqlreport`.
    SqlReport,
    /// `sysreport`.
    SysReport,
    /// `treereport`.
    TreeReport,
    /// `movereport`.
    MoveReport,
    /// `dynamicform`.
    DynamicForm,
}

impl FormType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            FormType::Unspecified => "",
            FormType::Bill => "bill",
            FormType::List => "list",
            FormType::WnReport => "wnreport",
            FormType::SqlReport => "sqlreport",
            FormType::SysReport => "sysreport",
            FormType::TreeReport => "treereport",
            FormType::MoveReport => "movereport",
            FormType::DynamicForm => "dynamicform",
        }
    }
}

/// Where the link opens (§4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Entry {
    /// `html5/index.aspx` — the main console (or `lightstartapp.aspx` with `openmode=Single`).
    #[default]
    Html5,
    /// `Silverlight/index.aspx`.
    Silverlight,
}

/// How `ud` is put into the URL. Whether Kingdee's sample percent-encodes it is unknown (§4.5);
/// percent-encoding is the safe default (`+`, `/`, `=` survive any query parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdEncoding {
    /// `%2B`, `%2F`, `%3D`.
    #[default]
    PercentEncoded,
    /// Base64 appended as is, as YiKdWebClient does.
    Raw,
}

/// One SSO link to sign.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoRequest {
    /// The Kingdee user to log in as.
    pub username: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// `origintype` (`SimPas` by default; `XT` for Yunzhijia).
    pub origin_type: String,
    /// `entryrole`.
    pub entry_role: String,
    /// `formid` to open after login.
    pub form_id: Option<FormId>,
    /// `formtype`.
    pub form_type: FormType,
    /// `pkid` of the bill to open (empty: a new bill).
    pub pk_id: String,
    /// `permitcount` in `otherargs` (`0` reusable, `1` once); not part of the signature.
    pub permit_count: Option<u32>,
    /// `openmode=Single`: open only the form, through `html5/lightstartapp.aspx`.
    pub single: bool,
    /// `formargs`: form initialisation arguments (sent as JSON text) ◐.
    pub form_args: Option<Value>,
}

impl SsoRequest {
    /// A plain login of `username` at `timestamp`.
    pub fn new(username: impl Into<String>, timestamp: i64) -> Self {
        Self {
            username: username.into(),
            timestamp,
            origin_type: "SimPas".to_owned(),
            entry_role: String::new(),
            form_id: None,
            form_type: FormType::Unspecified,
            pk_id: String::new(),
            permit_count: None,
            single: false,
            form_args: None,
        }
    }

    /// A plain login of `username` stamped with the system clock.
    pub fn now(username: impl Into<String>) -> Self {
        Self::new(username, chrono::Utc::now().timestamp())
    }

    /// Opens `form` (of `form_type`) after login, optionally one bill.
    pub fn open(mut self, form: FormId, form_type: FormType, pk_id: impl Into<String>) -> Self {
        self.form_id = Some(form);
        self.form_type = form_type;
        self.pk_id = pk_id.into();
        self
    }

    /// Sets `permitcount`.
    pub fn permit_count(mut self, count: u32) -> Self {
        self.permit_count = Some(count);
        self
    }

    /// Opens only the form (`openmode=Single`).
    pub fn single(mut self) -> Self {
        self.single = true;
        self
    }
}

/// A signed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoLink {
    /// `signeddata`.
    pub signed_data: String,
    /// The `ud` JSON before base64.
    pub ud_json: String,
    /// `ud`.
    pub ud: String,
    /// The entry URL.
    pub url: String,
}

/// Signs SSO links for one app registered in 第三方系统登录授权.
#[derive(Debug, Clone)]
pub struct SsoSigner {
    base_url: Url,
    dbid: String,
    app_id: String,
    app_secret: SecretString,
    lcid: u32,
    version: SsoVersion,
}

impl SsoSigner {
    /// A V4 signer. `base_url` is `…/k3cloud/`.
    pub fn new(
        base_url: Url,
        dbid: impl Into<String>,
        app_id: impl Into<String>,
        app_secret: SecretString,
    ) -> Self {
        let mut base_url = base_url;
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        Self {
            base_url,
            dbid: dbid.into(),
            app_id: app_id.into(),
            app_secret,
            lcid: 2052,
            version: SsoVersion::V4,
        }
    }

    /// The signer of a connection's own app (the same AppId/AppSecret serve SSO, §4.1).
    pub fn from_config(cfg: &KingdeeConfig) -> Self {
        Self::new(
            cfg.base_url.clone(),
            cfg.acct_id.clone(),
            cfg.app_id.clone(),
            cfg.app_secret.clone(),
        )
        .lcid(cfg.lcid)
    }

    /// Sets the version (hash).
    pub fn version(mut self, version: SsoVersion) -> Self {
        self.version = version;
        self
    }

    /// Sets `lcid`.
    pub fn lcid(mut self, lcid: u32) -> Self {
        self.lcid = lcid;
        self
    }

    /// `signeddata` over `[dbid, username, appid, appsecret, timestamp]`, ordinal sort, lower
    /// hex. [KD-SSO-NOTE `SHA1Util.GetSignature`] [KD-SSO-V4] (§4.4)
    pub fn signed_data(&self, username: &str, timestamp: i64) -> String {
        let ts = timestamp.to_string();
        sorted_hash(
            &[
                &self.dbid,
                username,
                &self.app_id,
                self.app_secret.expose_secret(),
                &ts,
            ],
            self.version.hash(),
        )
    }

    /// The `ud` JSON, keys in the order of Kingdee's `SimplePassportLoginArg`. [YIKD] (§4.3)
    pub fn ud_json(&self, req: &SsoRequest) -> String {
        let mut m = Map::new();
        m.insert("dbid".into(), json!(self.dbid));
        m.insert("username".into(), json!(req.username));
        m.insert("appid".into(), json!(self.app_id));
        m.insert(
            "signeddata".into(),
            json!(self.signed_data(&req.username, req.timestamp)),
        );
        m.insert("timestamp".into(), json!(req.timestamp.to_string()));
        m.insert("lcid".into(), json!(self.lcid.to_string()));
        m.insert("origintype".into(), json!(req.origin_type));
        m.insert("entryrole".into(), json!(req.entry_role));
        m.insert(
            "formid".into(),
            json!(req.form_id.as_ref().map_or("", FormId::as_str)),
        );
        m.insert("formtype".into(), json!(req.form_type.as_str()));
        m.insert("pkid".into(), json!(req.pk_id));
        // `|{'permitcount':'0'}` allows repeated logins, `'1'` one. [KD-SSO-COUNT] (§4.3)
        let other = req
            .permit_count
            .map(|n| format!("|{{'permitcount':'{n}'}}"))
            .unwrap_or_default();
        m.insert("otherargs".into(), json!(other));
        m.insert(
            "openmode".into(),
            if req.single {
                json!("Single")
            } else {
                Value::Null
            },
        );
        if let Some(args) = &req.form_args {
            m.insert("formargs".into(), json!(args.to_string()));
        }
        Value::Object(m).to_string()
    }

    /// Signs a link to the HTML5 entry (or `lightstartapp.aspx` when `single`).
    pub fn link(&self, req: &SsoRequest) -> SsoLink {
        self.link_with(req, Entry::Html5, UdEncoding::default())
    }

    /// Signs a link to a chosen entry with a chosen `ud` encoding.
    pub fn link_with(&self, req: &SsoRequest, entry: Entry, encoding: UdEncoding) -> SsoLink {
        let ud_json = self.ud_json(req);
        let ud = B64.encode(ud_json.as_bytes());
        let page = match (entry, req.single) {
            (Entry::Html5, false) => "html5/index.aspx",
            (Entry::Html5, true) => "html5/lightstartapp.aspx",
            (Entry::Silverlight, _) => "Silverlight/index.aspx",
        };
        let arg = match encoding {
            UdEncoding::PercentEncoded => urlencoding::encode(&ud).into_owned(),
            UdEncoding::Raw => ud.clone(),
        };
        SsoLink {
            signed_data: self.signed_data(&req.username, req.timestamp),
            url: format!("{}{page}?ud={arg}", self.base_url),
            ud_json,
            ud,
        }
    }

    /// The `ap0` form field of the SSO logout. ◐ [YIKD `GetSSOLogoutap0StrV4`] (§4.7)
    pub fn logout_ap0(&self, username: &str, timestamp: i64) -> String {
        let mut m = Map::new();
        m.insert("AcctID".into(), json!(self.dbid));
        m.insert("AppId".into(), json!(self.app_id));
        m.insert("Username".into(), json!(username));
        m.insert(
            "SignedData".into(),
            json!(self.signed_data(username, timestamp)),
        );
        m.insert("Timestamp".into(), json!(timestamp.to_string()));
        Value::Object(m).to_string()
    }
}

impl KingdeeClient {
    /// Logs `username` out of the sessions opened by SSO (`LogoutByOtherSystem`, form field
    /// `ap0`). Returns the body as sent; fails on a `ResponseStatus` with `IsSuccess:false`.
    pub async fn sso_logout(
        &self,
        signer: &SsoSigner,
        username: &str,
    ) -> Result<Value, KingdeeError> {
        let ap0 = signer.logout_ap0(username, self.now_unix());
        let sent = self
            .send_once(
                SSO_LOGOUT_SERVICE,
                SSO_GROUP,
                Body::Form(vec![("ap0", ap0)]),
                None,
                false,
            )
            .await?;
        let value = parse_body(SSO_LOGOUT_SERVICE, &sent.text)?;
        if let Some(status) = find_status(&value).filter(|s| !s.is_success) {
            return Err(KingdeeError::Api {
                service: SSO_LOGOUT_SERVICE.to_owned(),
                status: Box::new(status),
            });
        }
        self.pacer().succeeded(SSO_GROUP);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::tests::vectors;

    fn signer(case: &Value) -> SsoSigner {
        let i = &case["inputs"];
        let s = |k: &str| i[k].as_str().expect("input").to_owned();
        let version = if case["algorithm"] == "sha1" {
            SsoVersion::V3
        } else {
            SsoVersion::V4
        };
        SsoSigner::new(
            Url::parse("http://k3.example.local/k3cloud").expect("url"),
            s("dbid"),
            s("appid"),
            s("appsecret").into(),
        )
        .version(version)
    }

    #[test]
    fn every_sso_vector_matches() {
        let v = vectors();
        let cases = v["sso_signeddata"].as_array().expect("cases");
        assert_eq!(cases.len(), 3);
        for case in cases {
            let name = case["name"].as_str().expect("name");
            let i = &case["inputs"];
            let ts: i64 = i["timestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("ts");
            let user = i["username"].as_str().expect("user");
            let sg = signer(case);
            let req = SsoRequest::new(user, ts);
            assert_eq!(sg.signed_data(user, ts), case["signeddata"], "{name}");
            let raw = sg.link_with(&req, Entry::Html5, UdEncoding::Raw);
            assert_eq!(
                raw.ud_json,
                case["ud_json"].as_str().expect("json"),
                "{name}"
            );
            assert_eq!(raw.ud, case["ud_base64"].as_str().expect("b64"), "{name}");
            assert_eq!(
                raw.url,
                case["html5_url_raw"].as_str().expect("raw"),
                "{name}"
            );
            let enc = sg.link(&req);
            assert_eq!(
                enc.url,
                case["html5_url_percent_encoded"].as_str().expect("enc"),
                "{name}"
            );
            // The ud decodes back to the same Chinese user name.
            let decoded = B64.decode(enc.ud.as_bytes()).expect("base64");
            let parsed: Value = serde_json::from_slice(&decoded).expect("json");
            assert_eq!(parsed["username"], json!(user));
        }
    }

    #[test]
    fn single_mode_form_and_permitcount() {
        let v = vectors();
        let sg = signer(&v["sso_signeddata"][0]);
        let req = SsoRequest::new("张伟", 1_700_000_000)
            .open(FormId::new("ER_ExpReimbursement"), FormType::Bill, "100123")
            .permit_count(1)
            .single();
        let link = sg.link(&req);
        assert!(
            link.url
                .starts_with("http://k3.example.local/k3cloud/html5/lightstartapp.aspx?ud=")
        );
        let parsed: Value = serde_json::from_str(&link.ud_json).expect("json");
        assert_eq!(parsed["formid"], "ER_ExpReimbursement");
        assert_eq!(parsed["formtype"], "bill");
        assert_eq!(parsed["pkid"], "100123");
        assert_eq!(parsed["otherargs"], "|{'permitcount':'1'}");
        assert_eq!(parsed["openmode"], "Single");
        // permitcount is not signed (unconfirmed either way, §4.4): same signature as without it.
        assert_eq!(
            parsed["signeddata"],
            json!(sg.signed_data("张伟", 1_700_000_000))
        );
        let sl = sg.link_with(
            &SsoRequest::new("张伟", 1),
            Entry::Silverlight,
            UdEncoding::Raw,
        );
        assert!(sl.url.contains("/k3cloud/Silverlight/index.aspx?ud="));
    }

    #[test]
    fn logout_ap0_shape() {
        let v = vectors();
        let case = &v["sso_signeddata"][0];
        let sg = signer(case);
        let ap0 = sg.logout_ap0("zhangsan", 1_700_000_000);
        assert_eq!(
            ap0,
            format!(
                r#"{{"AcctID":"65f0a1b2c3d4e5","AppId":"HRApprovalApp","Username":"zhangsan","SignedData":{},"Timestamp":"1700000000"}}"#,
                case["signeddata"]
            )
        );
    }
}
