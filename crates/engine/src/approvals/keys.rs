//! API keys of in-house systems: `dbk_<prefix>_<secret>`. The prefix (8 characters) is public:
//! listings show it and the store finds the key by it. Only the SHA-256 of the whole key is
//! stored, so a leaked database does not leak working keys; the key itself is shown once, when
//! it is created.

use rand::Rng;
use sha2::{Digest, Sha256};
use store::{ApiKey, Millis, NewApiKey, Store, StoreError};
use subtle::ConstantTimeEq;

/// What a key may do. A key holds a list of these.
pub const SCOPES: &[(&str, &str)] = &[
    ("approvals:write", "start and cancel approvals"),
    ("approvals:read", "read approvals and their deliveries"),
    ("deliveries:write", "redeliver webhook messages"),
];

const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn random_text(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Hex SHA-256 of a whole key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The prefix of a presented key, if it has the shape `dbk_<8>_<secret>`.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("dbk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && secret.len() >= 16).then_some(prefix)
}

/// Why a key cannot be created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown scope `{0}`; known scopes: {known}", known = SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", "))]
    UnknownScope(String),
    #[error("a key needs at least one scope (--scope approvals:write)")]
    NoScope,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key: the stored record and the key text, shown once.
pub struct CreatedKey {
    pub record: ApiKey,
    pub key: String,
}

/// Create and store a key with these scopes.
pub async fn create_key(
    store: &dyn Store,
    name: &str,
    scopes: &[String],
    now: Millis,
) -> Result<CreatedKey, KeyError> {
    if scopes.is_empty() {
        return Err(KeyError::NoScope);
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| !SCOPES.iter().any(|(known, _)| known == s))
    {
        return Err(KeyError::UnknownScope(bad.clone()));
    }
    let prefix = random_text(8);
    let key = format!("dbk_{prefix}_{}", random_text(32));
    let record = store
        .create_api_key(&NewApiKey {
            name: name.to_owned(),
            prefix,
            hash: hash_key(&key),
            scopes: scopes.to_vec(),
            created_at: now,
        })
        .await?;
    Ok(CreatedKey { record, key })
}

/// Why a presented key is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No valid key: 401.
    Unauthenticated(Unauthenticated),
    /// A valid key without the scope: 403.
    Forbidden { scope: String },
}

/// Which way a key failed to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    Missing,
    /// Not of the shape `dbk_<prefix>_<secret>`.
    Malformed,
    /// No key with this prefix and secret.
    Unknown,
    Revoked,
}

impl Unauthenticated {
    /// What is wrong and the fix, in English.
    pub fn en(self) -> &'static str {
        match self {
            Unauthenticated::Missing => {
                "missing API key: send `Authorization: Bearer dbk_…` or `X-API-Key: dbk_…` (create one with `dingbridge keys create`)"
            }
            Unauthenticated::Malformed => {
                "malformed API key: expected `dbk_<prefix>_<secret>` exactly as it was shown when the key was created"
            }
            Unauthenticated::Unknown => {
                "unknown API key: no key with this prefix and secret; check it was copied whole, or create one with `dingbridge keys create`"
            }
            Unauthenticated::Revoked => {
                "this API key was revoked; create a new one with `dingbridge keys create` and use it instead"
            }
        }
    }

    /// The same in Chinese.
    pub fn zh(self) -> &'static str {
        match self {
            Unauthenticated::Missing => {
                "缺少 API 密钥：请在请求头中携带 `Authorization: Bearer dbk_…` 或 `X-API-Key: dbk_…`（用 `dingbridge keys create` 创建）"
            }
            Unauthenticated::Malformed => {
                "API 密钥格式不正确：应为创建时显示的 `dbk_<前缀>_<密文>`"
            }
            Unauthenticated::Unknown => {
                "未知的 API 密钥：请检查密钥是否完整复制，或用 `dingbridge keys create` 创建新密钥"
            }
            Unauthenticated::Revoked => {
                "此 API 密钥已被吊销；请用 `dingbridge keys create` 创建新的密钥并改用它"
            }
        }
    }
}

/// Check a presented key and its scope. The hash comparison is constant-time.
pub async fn authenticate(
    store: &dyn Store,
    presented: Option<&str>,
    scope: &str,
) -> Result<Result<ApiKey, Rejection>, StoreError> {
    let Some(presented) = presented else {
        return Ok(Err(Rejection::Unauthenticated(Unauthenticated::Missing)));
    };
    let Some(prefix) = prefix_of(presented) else {
        return Ok(Err(Rejection::Unauthenticated(Unauthenticated::Malformed)));
    };
    let Some(record) = store.find_api_key(prefix).await? else {
        return Ok(Err(Rejection::Unauthenticated(Unauthenticated::Unknown)));
    };
    let matches: bool = hash_key(presented)
        .as_bytes()
        .ct_eq(record.hash.as_bytes())
        .into();
    if !matches {
        return Ok(Err(Rejection::Unauthenticated(Unauthenticated::Unknown)));
    }
    if record.revoked_at.is_some() {
        return Ok(Err(Rejection::Unauthenticated(Unauthenticated::Revoked)));
    }
    if !record.scopes.iter().any(|s| s == scope) {
        return Ok(Err(Rejection::Forbidden {
            scope: scope.to_owned(),
        }));
    }
    Ok(Ok(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_a_findable_prefix_and_a_stable_hash() {
        let key = format!("dbk_{}_{}", random_text(8), random_text(32));
        let prefix = prefix_of(&key).map(str::to_owned);
        assert_eq!(prefix.as_deref(), Some(&key[4..12]));
        assert_eq!(hash_key(&key), hash_key(&key));
        assert_ne!(hash_key(&key), hash_key(&format!("{key}x")));
        assert_eq!(prefix_of("dbk_short_x"), None);
        assert_eq!(prefix_of("Bearer dbk_abcdefgh_0123456789abcdef"), None);
        assert_eq!(prefix_of("dbk_abcdefgh_0123456789abcdef"), Some("abcdefgh"));
    }
}
