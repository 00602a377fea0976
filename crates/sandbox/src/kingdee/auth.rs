//! The sandbox's own verifier for every Kingdee signature, written from
//! `shared/protocols/kingdee.md` (never from the `kingdee` client crate):
//! - v8 signature headers (§1.7): client secret, string to sign, `KdHmac`;
//! - LoginBySign `sign` (§1.5) and SSO `signeddata` (§4.4): ordinal sort, concatenate, SHA-256
//!   or SHA-1, lower-case hex.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The XOR key of §1.7 step 1 (`0054f397c6234378b09ca7d3e5debce7`, only the first 24 bytes
/// matter because the decoded suffix is 24 bytes). [SDK-PY `DecodeAppSecret`] [SDK-JAVA]
pub const APP_SECRET_XOR_KEY: &str = "0054f397c6234378b09ca7d3e5debce7";

/// Hash used by LoginBySign and SSO `signeddata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SignAlgorithm {
    /// Servers before PT-146911 8.0.0.202205 (LoginBySign), SSO V1–V3.
    Sha1,
    /// Current servers (LoginBySign), SSO V4.
    Sha256,
}

impl SignAlgorithm {
    /// Guess from the length of a lower-case hex signature: 40 → SHA-1, 64 → SHA-256.
    pub fn from_hex_len(len: usize) -> Option<SignAlgorithm> {
        match len {
            40 => Some(SignAlgorithm::Sha1),
            64 => Some(SignAlgorithm::Sha256),
            _ => None,
        }
    }
}

/// `StringComparer.Ordinal`: compare UTF-16 code units (§1.5, §4.4).
pub fn ordinal_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Sort ordinally, concatenate without separators, hash the UTF-8 bytes, lower-case hex.
/// LoginBySign: `[acctID, username, appId, appSecret, timestamp]` (§1.5);
/// SSO: `[dbid, username, appid, appsecret, timestamp]` (§4.4).
pub fn sorted_sign(parts: &[&str], algorithm: SignAlgorithm) -> String {
    let concat = sorted_concat(parts);
    match algorithm {
        SignAlgorithm::Sha1 => hex::encode(Sha1::digest(concat.as_bytes())),
        SignAlgorithm::Sha256 => hex::encode(Sha256::digest(concat.as_bytes())),
    }
}

pub fn sorted_concat(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_by(|a, b| ordinal_cmp(a, b));
    sorted.concat()
}

/// `KdHmac(msg, key) = base64(ascii(lower_hex(HMAC-SHA256(key, msg))))` (§1.7 step 3).
pub fn kd_hmac(msg: &str, key: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(msg.as_bytes());
    B64.encode(hex::encode(mac.finalize().into_bytes()))
}

/// `base64(base64decode(suffix) XOR K)` (§1.7 step 1). `None` when the suffix is not 32
/// characters of base64 (the Python SDK then signs with an empty secret; the sandbox refuses).
pub fn client_secret(app_id_suffix: &str) -> Option<String> {
    if app_id_suffix.len() != 32 {
        return None;
    }
    let decoded = B64.decode(app_id_suffix).ok()?;
    let key = APP_SECRET_XOR_KEY.as_bytes();
    let xored: Vec<u8> = decoded.iter().zip(key.iter()).map(|(a, b)| a ^ b).collect();
    if xored.len() != decoded.len() {
        return None;
    }
    Some(B64.encode(xored))
}

/// Splits `ClientID_Suffix` at the first `_`. The Python SDK requires exactly two parts.
pub fn split_app_id(app_id: &str) -> Option<(&str, &str)> {
    let (client, suffix) = app_id.split_once('_')?;
    if suffix.contains('_') {
        return None;
    }
    Some((client, suffix))
}

/// Python `quote(path).replace('/', '%2F')`: everything but `A-Za-z0-9_.-~` percent-encoded
/// with upper-case hex (§1.7 step 2).
pub fn enc_path_python(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 2);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Java `URLEncoder.encode(path, "UTF-8")`: keeps `A-Za-z0-9.-*_`, space → `+` (§1.7 step 2:
/// the SDKs differ only on `~ * ! ( )` and space).
pub fn enc_path_java(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 2);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'*') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `"POST\n" + enc(path) + "\n\n" + "x-api-nonce:" + nonce + "\n" + "x-api-timestamp:" + ts + "\n"`
/// — nonce first whatever `x-api-signheaders` says (§1.7 step 2).
pub fn string_to_sign(encoded_path: &str, nonce: &str, timestamp: &str) -> String {
    format!("POST\n{encoded_path}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n")
}

/// `X-Kd-Appdata` plain text: `AcctID,UserName,LCID,OrgNum`.
pub fn app_data_plain(acct_id: &str, user_name: &str, lcid: &str, org_num: &str) -> String {
    format!("{acct_id},{user_name},{lcid},{org_num}")
}

/// Parsed `X-Kd-Appdata`. The user name may itself contain commas, so the acct id is taken up
/// to the first comma and LCID / OrgNum from the last two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppData {
    pub plain: String,
    pub acct_id: String,
    pub user_name: String,
    pub lcid: String,
    pub org_num: String,
}

pub fn parse_app_data(header_b64: &str) -> Option<AppData> {
    let bytes = B64.decode(header_b64.trim()).ok()?;
    let plain = String::from_utf8(bytes).ok()?;
    let (acct_id, rest) = plain.split_once(',')?;
    let (rest, org_num) = rest.rsplit_once(',')?;
    let (user_name, lcid) = rest.rsplit_once(',')?;
    Some(AppData {
        acct_id: acct_id.to_owned(),
        user_name: user_name.to_owned(),
        lcid: lcid.to_owned(),
        org_num: org_num.to_owned(),
        plain,
    })
}

/// Constant-time string comparison for signatures.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A Unix timestamp in seconds or milliseconds (§1.7: Python sends seconds, Java
/// milliseconds) normalised to seconds.
pub fn timestamp_seconds(raw: &str) -> Option<i64> {
    let v: i64 = raw.trim().parse().ok()?;
    Some(if v > 100_000_000_000 { v / 1000 } else { v })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_sort_differs_from_culture_sort() {
        // §4.4: Ordinal puts `Administrator` before a lower-case hex secret.
        assert_eq!(
            sorted_concat(&["a1b2", "Administrator"]),
            "Administratora1b2"
        );
        // A supplementary-plane character sorts before U+E000..U+FFFF in UTF-16 order.
        assert_eq!(
            ordinal_cmp("\u{10000}", "\u{FF01}"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn app_data_with_comma_in_name() {
        let b64 = B64.encode("acct,a,b,2052,100");
        let d = parse_app_data(&b64).unwrap();
        assert_eq!((d.acct_id.as_str(), d.user_name.as_str()), ("acct", "a,b"));
        assert_eq!((d.lcid.as_str(), d.org_num.as_str()), ("2052", "100"));
    }

    #[test]
    fn timestamps_in_ms_are_normalised() {
        assert_eq!(timestamp_seconds("1700000000"), Some(1_700_000_000));
        assert_eq!(timestamp_seconds("1700000000123"), Some(1_700_000_000));
        assert_eq!(timestamp_seconds("x"), None);
    }
}
