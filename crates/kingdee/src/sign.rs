//! Signing: the v8 signature headers (protocol §1.7), the LoginBySign `sign` (§1.5) and the sorted
//! concatenation hash shared with SSO `signeddata` (§4.4). Everything here is a pure function of
//! its inputs; the clock and nonce are passed in, so the golden vectors can be replayed.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The XOR key that turns an AppId suffix into the API client secret; only its first 24 bytes
/// are used. [SDK-PY `DecodeAppSecret/xor_code`] [SDK-JAVA literal] (§1.7 step 1)
pub const APP_SECRET_XOR_KEY: &[u8; 32] = b"0054f397c6234378b09ca7d3e5debce7";

/// Value of `X-Api-Auth-Version`. [SDK-PY const/header_param.py]
pub const AUTH_VERSION: &str = "2.0";
/// Value of `x-api-signheaders` as the Python SDK sends it. [SDK-PY]
pub const SIGN_HEADERS: &str = "x-api-timestamp,x-api-nonce";

/// Hash used by the sorted-concatenation signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1: LoginBySign before PT-146911 8.0.0.202205, SSO V1–V3.
    Sha1,
    /// SHA-256: LoginBySign from 8.0.0.202205, SSO V4.
    Sha256,
}

/// `StringComparer.Ordinal`: UTF-16 code-unit order (§1.5). Differs from Rust's byte order only
/// for supplementary-plane characters against U+E000–U+FFFF.
pub fn ordinal_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Sorts the parts ordinally and concatenates them without separators. [MANUAL 5.1.1] [KD-SSO-NOTE]
pub fn sorted_concat(parts: &[&str]) -> String {
    let mut v: Vec<&str> = parts.to_vec();
    v.sort_by(|a, b| ordinal_cmp(a, b));
    v.concat()
}

/// Lower-case hex of the hash of the ordinally sorted, concatenated parts (UTF-8).
pub fn sorted_hash(parts: &[&str], alg: HashAlg) -> String {
    let joined = sorted_concat(parts);
    match alg {
        HashAlg::Sha1 => hex::encode(Sha1::digest(joined.as_bytes())),
        HashAlg::Sha256 => hex::encode(Sha256::digest(joined.as_bytes())),
    }
}

/// The LoginBySign `sign` over `[acctID, username, appId, appSecret, timestamp]` (§1.5).
/// [MANUAL 5.1.1 `GetSHA256` / `GetSha1`]
pub fn login_by_sign(
    acct_id: &str,
    user_name: &str,
    app_id: &str,
    app_secret: &str,
    timestamp: &str,
    alg: HashAlg,
) -> String {
    sorted_hash(&[acct_id, user_name, app_id, app_secret, timestamp], alg)
}

/// `KdHmac(msg, key)` = base64(ascii(lower_hex(HMAC-SHA256))); always 88 characters.
/// [SDK-PY `HmacSHA256`] [SDK-JAVA `hashMAC`] (§1.7 step 3)
pub fn kd_hmac(msg: &str, key: &str) -> String {
    B64.encode(hmac_hex(msg, key))
}

fn hmac_hex(msg: &str, key: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The API client secret: `base64(base64decode(suffix) XOR K[..24])`; `None` when the suffix is
/// not 32 characters of base64 (the Python SDK then signs with `""`). (§1.7 step 1)
pub fn client_secret_from_suffix(suffix: &str) -> Option<String> {
    if suffix.len() != 32 {
        return None;
    }
    let raw = B64.decode(suffix).ok()?;
    let xored: Vec<u8> = raw
        .iter()
        .zip(APP_SECRET_XOR_KEY.iter().take(24))
        .map(|(a, k)| a ^ k)
        .collect();
    Some(B64.encode(xored))
}

/// Percent-encodes a URL path for the string to sign the way the Python SDK does:
/// `quote(path).replace('/', '%2F')` — `A-Za-z0-9_.-~` kept, every other byte `%XX` upper-case.
/// (§1.7 step 2)
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 3 / 2);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inputs of the signature headers.
#[derive(Debug, Clone, Copy)]
pub struct SignatureInputs<'a> {
    /// Data centre id.
    pub acct_id: &'a str,
    /// User name.
    pub user_name: &'a str,
    /// `ClientID_Suffix`.
    pub app_id: &'a str,
    /// The raw 32-hex AppSecret.
    pub app_secret: &'a str,
    /// LCID.
    pub lcid: u32,
    /// OrgNum.
    pub org_num: &'a str,
}

/// Every header of the v8 scheme plus the intermediates, for tests and `check` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `X-Api-ClientID`.
    pub client_id: String,
    /// AppId part after the first `_`.
    pub app_id_suffix: String,
    /// The decoded API client secret (step 1); empty if the suffix is malformed.
    pub client_secret: String,
    /// `enc(path)`.
    pub path_for_signing: String,
    /// The string to sign (step 2).
    pub string_to_sign: String,
    /// `x-api-timestamp`.
    pub timestamp: String,
    /// `x-api-nonce`.
    pub nonce: String,
    /// `X-Api-Signature`.
    pub api_signature: String,
    /// `X-Kd-Appkey`.
    pub app_key: String,
    /// `AcctID,UserName,LCID,OrgNum` before base64.
    pub appdata_plain: String,
    /// `X-Kd-Appdata`.
    pub appdata: String,
    /// `X-Kd-Signature`.
    pub kd_signature: String,
}

impl SignatureHeaders {
    /// Computes the headers for a request to `url_path` (the real URL path, e.g.
    /// `/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc`).
    /// The Python SDK uses the timestamp (Unix seconds) as nonce. [SDK-PY `BuildHeader`]
    pub fn compute(
        inputs: &SignatureInputs<'_>,
        url_path: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Self {
        let (client_id, suffix) = inputs.app_id.split_once('_').unwrap_or((inputs.app_id, ""));
        let client_secret = client_secret_from_suffix(suffix).unwrap_or_default();
        let path_for_signing = encode_path(url_path);
        let string_to_sign = format!(
            "POST\n{path_for_signing}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n"
        );
        let api_signature = kd_hmac(&string_to_sign, &client_secret);
        let appdata_plain = format!(
            "{},{},{},{}",
            inputs.acct_id, inputs.user_name, inputs.lcid, inputs.org_num
        );
        let appdata = B64.encode(appdata_plain.as_bytes());
        let kd_signature = kd_hmac(
            &format!("{}{appdata_plain}", inputs.app_id),
            inputs.app_secret,
        );
        Self {
            client_id: client_id.to_owned(),
            app_id_suffix: suffix.to_owned(),
            client_secret,
            path_for_signing,
            string_to_sign,
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            api_signature,
            app_key: inputs.app_id.to_owned(),
            appdata_plain,
            appdata,
            kd_signature,
        }
    }

    /// The headers to send, with the exact names the Python SDK uses.
    pub fn header_pairs(&self) -> [(&'static str, &str); 9] {
        [
            ("X-Api-ClientID", &self.client_id),
            ("X-Api-Auth-Version", AUTH_VERSION),
            ("x-api-timestamp", &self.timestamp),
            ("x-api-nonce", &self.nonce),
            ("x-api-signheaders", SIGN_HEADERS),
            ("X-Api-Signature", &self.api_signature),
            ("X-Kd-Appkey", &self.app_key),
            ("X-Kd-Appdata", &self.appdata),
            ("X-Kd-Signature", &self.kd_signature),
        ]
    }
}

/// The path to sign for a URL: its real path, percent-decoded so that `encode_path` sees the
/// same characters the SDK would (the `url` crate already escapes non-ASCII).
pub fn signing_path(url: &url::Url) -> String {
    urlencoding::decode(url.path())
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| url.path().to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    pub(crate) fn vectors() -> Value {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors/kingdee.json"
        ));
        serde_json::from_str(text).expect("kingdee.json parses")
    }

    fn s<'a>(v: &'a Value, k: &str) -> &'a str {
        v[k].as_str().unwrap_or_else(|| panic!("{k} missing"))
    }

    #[test]
    fn signature_headers_match_every_sdk_vector() {
        let v = vectors();
        let cases = v["sdk_signature_headers"].as_array().expect("array");
        assert_eq!(cases.len(), 4);
        for case in cases {
            let name = s(case, "name");
            let i = &case["inputs"];
            let org = i["org_num"].to_string();
            let inputs = SignatureInputs {
                acct_id: s(i, "acct_id"),
                user_name: s(i, "user_name"),
                app_id: s(i, "app_id"),
                app_secret: s(i, "app_secret"),
                lcid: u32::try_from(i["lcid"].as_u64().expect("lcid")).expect("lcid"),
                org_num: &org,
            };
            let url = url::Url::parse(s(case, "full_url")).expect("url");
            let ts = i["timestamp"].to_string();
            let h = SignatureHeaders::compute(&inputs, &signing_path(&url), &ts, &ts);
            let m = &case["intermediate"];
            assert_eq!(h.client_id, s(m, "client_id"), "{name}");
            assert_eq!(h.app_id_suffix, s(m, "app_id_suffix"), "{name}");
            assert_eq!(h.client_secret, s(m, "client_secret_decoded"), "{name}");
            assert_eq!(h.path_for_signing, s(m, "path_for_signing"), "{name}");
            assert_eq!(h.string_to_sign, s(m, "string_to_sign"), "{name}");
            assert_eq!(h.appdata_plain, s(m, "x_kd_appdata_plain"), "{name}");
            assert_eq!(
                hmac_hex(&h.string_to_sign, &h.client_secret),
                s(m, "hmac_x_api_signature_hex"),
                "{name}"
            );
            assert_eq!(
                hmac_hex(
                    &format!("{}{}", h.app_key, h.appdata_plain),
                    inputs.app_secret
                ),
                s(m, "hmac_x_kd_signature_hex"),
                "{name}"
            );
            let expected = &case["headers"];
            for (k, val) in h.header_pairs() {
                assert_eq!(val, s(expected, k), "{name}: header {k}");
            }
            assert_eq!(h.api_signature.len(), 88);
        }
    }

    #[test]
    fn login_by_sign_matches_vectors() {
        let v = vectors();
        for case in v["login_by_sign"].as_array().expect("array") {
            let i = &case["inputs"];
            let parts = [
                s(i, "acct_id"),
                s(i, "user_name"),
                s(i, "app_id"),
                s(i, "app_secret"),
                s(i, "timestamp"),
            ];
            assert_eq!(sorted_concat(&parts), s(case, "sorted_concat"));
            let alg = match s(case, "algorithm") {
                "sha256" => HashAlg::Sha256,
                "sha1" => HashAlg::Sha1,
                other => panic!("unknown algorithm {other}"),
            };
            let sign = login_by_sign(parts[0], parts[1], parts[2], parts[3], parts[4], alg);
            assert_eq!(sign, s(case, "sign"), "{}", s(case, "name"));
        }
    }

    #[test]
    fn ordinal_is_utf16_order() {
        // U+FF21 (fullwidth A) is one UTF-16 unit 0xFF21; U+1F600 is a surrogate pair 0xD83D…
        // Byte order puts U+FF21 first (EF BC A1 < F0 9F …); UTF-16 order puts the emoji first.
        assert_eq!(ordinal_cmp("\u{1F600}", "\u{FF21}"), Ordering::Less);
        assert!("\u{1F600}" > "\u{FF21}");
        // Ordinal is case-sensitive: upper case before lower case.
        assert_eq!(
            sorted_concat(&["a1b2", "Administrator"]),
            "Administratora1b2"
        );
        assert_eq!(sorted_concat(&["张三", "1700000000"]), "1700000000张三");
    }

    #[test]
    fn malformed_suffix_signs_with_empty_secret() {
        assert_eq!(client_secret_from_suffix("short"), None);
        assert_eq!(client_secret_from_suffix(&"!".repeat(32)), None);
        let inputs = SignatureInputs {
            acct_id: "a",
            user_name: "b",
            app_id: "300001",
            app_secret: "x",
            lcid: 2052,
            org_num: "",
        };
        let h = SignatureHeaders::compute(&inputs, "/k3cloud/x", "1", "1");
        assert_eq!(h.client_secret, "");
        assert_eq!(h.client_id, "300001");
        assert_eq!(h.appdata_plain, "a,b,2052,");
    }

    #[test]
    fn encode_path_escapes_like_python_quote() {
        assert_eq!(encode_path("/k3cloud/A.b-c_d~e"), "%2Fk3cloud%2FA.b-c_d~e");
        assert_eq!(encode_path("/a b,c"), "%2Fa%20b%2Cc");
        assert_eq!(encode_path("/部"), "%2F%E9%83%A8");
        let url = url::Url::parse("http://h/k3云/x").expect("url");
        assert_eq!(encode_path(&signing_path(&url)), "%2Fk3%E4%BA%91%2Fx");
    }
}
