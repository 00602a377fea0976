//! HTTP-callback crypto (protocol §5.1; DOC
//! https://open.dingtalk.com/document/development/callback-event-message-body-encryption-and-decryption ;
//! CRYPTO-REPO `DingCallbackCrypto.java`; GZS `dingtalk/crypto/base.py`, `pkcs7.py`).
//!
//! * `aes_key = base64(EncodingAESKey + "=")` (32 bytes, AES-256), `iv = aes_key[..16]`.
//! * plain = `random(16)` ‖ `u32 BE byte length of msg` ‖ `msg (UTF-8)` ‖ `owner_key`, PKCS#7
//!   padded to a **32-byte** block, AES-256-CBC, standard base64 without line breaks.
//! * signature = lower-case hex SHA-1 of the byte-wise sorted concatenation of
//!   `[token, timestamp, nonce, encrypt]`, compared in constant time.
//! * Every event (including `check_url`) is answered with the encrypted literal `success`:
//!   `{"msg_signature","timeStamp","nonce","encrypt"}`.
//!
//! All of it is checked byte for byte against `shared/vectors/dingtalk.json`.

use aes::Aes256;
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::config::CallbackSettings;

/// PKCS#7 block size DingTalk uses (32, not AES's 16).
const BLOCK: usize = 32;

/// Callback crypto failures, with the library codes 900001–900010 (CRYPTO-REPO Java).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters (900004).
    #[error("invalid EncodingAESKey: {0}")]
    InvalidAesKey(String),
    /// The signature does not match (900005).
    #[error("callback signature mismatch")]
    SignatureMismatch,
    /// The ciphertext could not be decoded or decrypted (900008).
    #[error("callback decryption failed: {0}")]
    Decrypt(String),
    /// The embedded length does not fit the buffer (900009).
    #[error("callback message length mismatch")]
    LengthMismatch,
    /// The owner key (CorpId / AppKey / SuiteKey) differs (900010).
    #[error("callback owner key mismatch: got {found:?}")]
    OwnerKeyMismatch {
        /// The owner key found in the message.
        found: String,
    },
    /// The decrypted message is not UTF-8 / not the expected JSON.
    #[error("callback message is malformed: {0}")]
    Malformed(String),
}

impl CryptoError {
    /// The library error code of the official helpers (900001–900010).
    pub fn code(&self) -> u32 {
        match self {
            CryptoError::InvalidAesKey(_) => 900_004,
            CryptoError::SignatureMismatch => 900_005,
            CryptoError::Decrypt(_) | CryptoError::Malformed(_) => 900_008,
            CryptoError::LengthMismatch => 900_009,
            CryptoError::OwnerKeyMismatch { .. } => 900_010,
        }
    }
}

/// Python's `b64decode` accepts non-zero trailing bits in the 43rd character (the vectors'
/// keys have them), so decode the key leniently.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Callback signature: lower-case hex SHA-1 over the byte-wise sorted concatenation of the
/// four strings (DOC; Java `Arrays.sort`; GZS `DingTalkSigner`).
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable(); // `str` ordering is byte-wise
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Check a callback signature in constant time (hex case-insensitive).
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    given: &str,
) -> bool {
    let expected = signature(token, timestamp, nonce, encrypt);
    let given = given.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// 16 random characters from `[A-Za-z0-9]`, like Java's `Utils.getRandomStr` (used for the
/// random prefix and for reply nonces — the Java helper requires a 16-char nonce).
pub fn random_alnum16() -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut rng = rand::rng();
    for b in &mut out {
        *b = rng.sample(rand::distr::Alphanumeric);
    }
    out
}

/// The JSON reply to a callback (protocol §5.1 "Required response").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedReply {
    /// SHA-1 signature over (token, timeStamp, nonce, encrypt).
    pub msg_signature: String,
    /// The encrypted payload.
    pub encrypt: String,
    /// The timestamp that was signed.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// The nonce that was signed.
    pub nonce: String,
}

/// Query string of an inbound callback: `signature`/`msg_signature`, `timestamp`/`timeStamp`,
/// `nonce` — official samples accept both spellings (CRYPTO-REPO README).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    /// `msg_signature` or `signature`.
    #[serde(alias = "signature")]
    pub msg_signature: Option<String>,
    /// `timestamp` or `timeStamp`.
    #[serde(alias = "timeStamp")]
    pub timestamp: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
}

/// Body of an inbound callback: `{"encrypt":"…"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackBody {
    /// The base64 ciphertext.
    pub encrypt: String,
}

/// A decrypted callback event.
#[derive(Debug, Clone)]
pub struct CallbackEvent {
    /// `EventType` (e.g. `check_url`, `user_add_org`, `bpms_instance_change`).
    pub event_type: String,
    /// `eventId` when present (dedupe key, DOC appendix-b).
    pub event_id: Option<String>,
    /// The whole decrypted JSON.
    pub payload: Value,
    /// The decrypted text as received.
    pub plaintext: String,
}

impl CallbackEvent {
    /// URL verification events: `check_url` (and ISV `check_create_suite_url`,
    /// `check_update_suite_url`), protocol §5.1.
    pub fn is_check_url(&self) -> bool {
        matches!(
            self.event_type.as_str(),
            "check_url" | "check_create_suite_url" | "check_update_suite_url"
        )
    }
}

/// Encrypts, decrypts and signs HTTP callbacks for one app.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: SecretString,
    key: [u8; 32],
    owner_key: String,
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("owner_key", &self.owner_key)
            .finish_non_exhaustive()
    }
}

impl CallbackCrypto {
    /// From the console's token, EncodingAESKey (43 chars) and the owner key.
    pub fn new(
        token: impl Into<String>,
        encoding_aes_key: &str,
        owner_key: impl Into<String>,
    ) -> Result<Self, CryptoError> {
        let k = encoding_aes_key.trim();
        if k.len() != 43 {
            return Err(CryptoError::InvalidAesKey(format!(
                "expected 43 characters, got {}",
                k.len()
            )));
        }
        let bytes = LENIENT
            .decode(format!("{k}="))
            .map_err(|e| CryptoError::InvalidAesKey(e.to_string()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidAesKey("does not decode to 32 bytes".into()))?;
        Ok(Self {
            token: SecretString::from(token.into()),
            key,
            owner_key: owner_key.into(),
        })
    }

    /// From the configured [`CallbackSettings`].
    pub fn from_settings(s: &CallbackSettings) -> Result<Self, CryptoError> {
        Self::new(
            s.token.expose_secret(),
            s.encoding_aes_key.expose_secret(),
            s.owner_key.clone(),
        )
    }

    /// The 32-byte AES key.
    pub fn aes_key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The owner key bound into messages.
    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// The padded plain buffer before AES (exposed for tests against the vectors).
    pub fn padded_plain(&self, plaintext: &str, random: &[u8; 16]) -> Vec<u8> {
        let msg = plaintext.as_bytes();
        let mut buf = Vec::with_capacity(20 + msg.len() + self.owner_key.len() + BLOCK);
        buf.extend_from_slice(random);
        // Length is the UTF-8 byte length (vector own_user_add_org_utf8).
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(msg);
        buf.extend_from_slice(self.owner_key.as_bytes());
        let pad = BLOCK - buf.len() % BLOCK; // a whole block when aligned
        buf.extend(std::iter::repeat_n(pad as u8, pad));
        buf
    }

    /// Encrypt with a given random prefix (deterministic; for tests).
    pub fn encrypt_with_random(&self, plaintext: &str, random: &[u8; 16]) -> String {
        let mut buf = self.padded_plain(plaintext, random);
        let len = buf.len();
        let enc = cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into());
        // The buffer is already padded to a multiple of 32, so NoPadding cannot fail.
        match enc.encrypt_padded_mut::<NoPadding>(&mut buf, len) {
            Ok(ct) => STANDARD.encode(ct),
            Err(_) => String::new(),
        }
    }

    /// Encrypt with a fresh random prefix.
    pub fn encrypt(&self, plaintext: &str) -> String {
        self.encrypt_with_random(plaintext, &random_alnum16())
    }

    /// Decrypt and return `(message, owner_key)` without checking the owner key.
    pub fn decrypt_parts(&self, encrypt: &str) -> Result<(String, String), CryptoError> {
        let ct = STANDARD
            .decode(encrypt.trim())
            .or_else(|_| LENIENT.decode(encrypt.trim()))
            .map_err(|e| CryptoError::Decrypt(format!("base64: {e}")))?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CryptoError::Decrypt(format!(
                "ciphertext length {} is not a multiple of 16",
                ct.len()
            )));
        }
        let dec = cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into());
        let mut ct = ct;
        let plain_len = dec
            .decrypt_padded_mut::<NoPadding>(&mut ct)
            .map_err(|e| CryptoError::Decrypt(e.to_string()))?
            .len();
        let mut plain = ct;
        plain.truncate(plain_len);
        // Java: a pad byte outside 1..=32 is treated as 0.
        let pad = plain.last().copied().map(usize::from).unwrap_or(0);
        let pad = if (1..=BLOCK).contains(&pad) { pad } else { 0 };
        plain.truncate(plain.len().saturating_sub(pad));
        if plain.len() < 20 {
            return Err(CryptoError::LengthMismatch);
        }
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&plain[16..20]);
        let len = u32::from_be_bytes(len_bytes) as usize;
        let rest = &plain[20..];
        if len > rest.len() {
            return Err(CryptoError::LengthMismatch);
        }
        let msg = std::str::from_utf8(&rest[..len])
            .map_err(|e| CryptoError::Malformed(format!("message is not UTF-8: {e}")))?;
        let owner = String::from_utf8_lossy(&rest[len..]).into_owned();
        Ok((msg.to_owned(), owner))
    }

    /// Decrypt and check the owner key.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let (msg, owner) = self.decrypt_parts(encrypt)?;
        if owner != self.owner_key {
            return Err(CryptoError::OwnerKeyMismatch { found: owner });
        }
        Ok(msg)
    }

    /// Signature with this app's token.
    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature(self.token.expose_secret(), timestamp, nonce, encrypt)
    }

    /// Verify a signature with this app's token (constant time).
    pub fn verify(&self, signature: &str, timestamp: &str, nonce: &str, encrypt: &str) -> bool {
        verify_signature(
            self.token.expose_secret(),
            timestamp,
            nonce,
            encrypt,
            signature,
        )
    }

    /// Verify then decrypt an inbound callback.
    pub fn open(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CryptoError> {
        if !self.verify(signature, timestamp, nonce, encrypt) {
            return Err(CryptoError::SignatureMismatch);
        }
        self.decrypt(encrypt)
    }

    /// Verify, decrypt and parse an inbound callback from its query and body.
    pub fn open_event(
        &self,
        query: &CallbackQuery,
        body: &CallbackBody,
    ) -> Result<CallbackEvent, CryptoError> {
        let sig = query.msg_signature.as_deref().unwrap_or_default();
        let ts = query.timestamp.as_deref().unwrap_or_default();
        let nonce = query.nonce.as_deref().unwrap_or_default();
        let plaintext = self.open(sig, ts, nonce, &body.encrypt)?;
        let payload: Value = serde_json::from_str(&plaintext)
            .map_err(|e| CryptoError::Malformed(format!("not JSON: {e}")))?;
        let event_type = payload
            .get("EventType")
            .or_else(|| payload.get("eventType"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let event_id = payload
            .get("eventId")
            .or_else(|| payload.get("EventId"))
            .and_then(crate::lenient::as_string);
        Ok(CallbackEvent {
            event_type,
            event_id,
            payload,
            plaintext,
        })
    }

    /// An encrypted, signed reply carrying `plaintext`, with a pinned random prefix.
    pub fn reply_with_random(
        &self,
        plaintext: &str,
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
    ) -> EncryptedReply {
        let encrypt = self.encrypt_with_random(plaintext, random);
        EncryptedReply {
            msg_signature: self.sign(timestamp, nonce, &encrypt),
            encrypt,
            time_stamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
        }
    }

    /// An encrypted, signed reply carrying `plaintext`.
    pub fn reply(&self, plaintext: &str, timestamp: &str, nonce: &str) -> EncryptedReply {
        self.reply_with_random(plaintext, timestamp, nonce, &random_alnum16())
    }

    /// The reply every event needs: the encrypted literal `success`, with the current time in
    /// ms and a fresh 16-character nonce.
    pub fn success_reply(&self) -> EncryptedReply {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
            .to_string();
        let nonce = String::from_utf8_lossy(&random_alnum16()).into_owned();
        self.reply("success", &ts, &nonce)
    }

    /// Answer URL verification: open the callback, require a `check_url`-type event and return
    /// the `success` reply.
    pub fn check_url(
        &self,
        query: &CallbackQuery,
        body: &CallbackBody,
    ) -> Result<EncryptedReply, CryptoError> {
        let ev = self.open_event(query, body)?;
        if !ev.is_check_url() {
            return Err(CryptoError::Malformed(format!(
                "expected check_url, got {:?}",
                ev.event_type
            )));
        }
        Ok(self.success_reply())
    }
}
