//! HTTP-callback crypto, written from protocol §5.1 ("Crypto" steps 1–5). The sandbox uses it
//! to encrypt and sign the events it pushes and to check the encrypted `success` replies.

use aes::Aes256;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};

/// Why a message could not be handled (codes 900001–900010 of §5.1 step 6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("900004: EncodingAESKey must be 43 characters that decode to 32 bytes")]
    BadAesKey,
    #[error("900005: signature mismatch")]
    Signature,
    #[error("900008: cannot decrypt (bad base64, block size or padding)")]
    Decrypt,
    #[error("900009: length field does not match the message")]
    Length,
    #[error("900010: owner key mismatch")]
    OwnerKey,
}

/// The callback cipher of one subscription: the console's token and EncodingAESKey, and the
/// owner key (AppKey for console subscriptions, CorpId for `call_back` API registrations).
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
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

/// §5.1 step 1: `base64_decode(EncodingAESKey + "=")` → 32 bytes.
pub fn aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != 43 {
        return Err(CryptoError::BadAesKey);
    }
    // 43 characters carry 258 bits: the last 2 are dropped, as Java's and Python's decoders
    // do, so trailing bits must be allowed.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let bytes = LENIENT
        .decode(format!("{encoding_aes_key}="))
        .map_err(|_| CryptoError::BadAesKey)?;
    bytes.try_into().map_err(|_| CryptoError::BadAesKey)
}

/// §5.1 step 5: lowercase hex SHA-1 of the byte-wise sorted concatenation.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A 16-character random string from `[A-Za-z0-9]` (§5.1 step 2, Java `getRandomStr`).
pub fn random16() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

type Enc = cbc::Encryptor<Aes256>;
type Dec = cbc::Decryptor<Aes256>;

impl CallbackCrypto {
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        owner_key: &str,
    ) -> Result<CallbackCrypto, CryptoError> {
        Ok(CallbackCrypto {
            token: token.to_owned(),
            key: aes_key(encoding_aes_key)?,
            owner_key: owner_key.to_owned(),
        })
    }

    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    /// §5.1 steps 2–3 with a given 16-byte random prefix: returns the base64 ciphertext.
    pub fn encrypt_with_random(&self, random: &[u8], msg: &str) -> String {
        let mut buf = Vec::with_capacity(random.len() + 4 + msg.len() + self.owner_key.len() + 32);
        buf.extend_from_slice(random);
        // u32 big-endian byte length of the UTF-8 message.
        buf.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        buf.extend_from_slice(msg.as_bytes());
        buf.extend_from_slice(self.owner_key.as_bytes());
        // PKCS#7 to a 32-byte block: a whole block when already aligned.
        let pad = 32 - buf.len() % 32;
        buf.extend(std::iter::repeat_n(pad as u8, pad));
        let len = buf.len();
        let iv: [u8; 16] = self.iv();
        let enc = Enc::new(&self.key.into(), &iv.into());
        // The buffer is a multiple of 16, so NoPadding cannot fail; keep the input otherwise.
        let out = match enc.encrypt_padded_mut::<NoPadding>(&mut buf, len) {
            Ok(ct) => ct.to_vec(),
            Err(_) => Vec::new(),
        };
        STANDARD.encode(out)
    }

    /// Encrypts with a fresh random prefix.
    pub fn encrypt(&self, msg: &str) -> String {
        self.encrypt_with_random(random16().as_bytes(), msg)
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// §5.1 step 4.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut buf = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::Decrypt)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::Decrypt);
        }
        let iv = self.iv();
        let dec = Dec::new(&self.key.into(), &iv.into());
        let plain = dec
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::Decrypt)?;
        let pad = plain.last().copied().unwrap_or(0) as usize;
        // Java: a pad byte outside 1..=32 counts as 0.
        let pad = if (1..=32).contains(&pad) { pad } else { 0 };
        let body = &plain[..plain.len().saturating_sub(pad)];
        if body.len() < 20 {
            return Err(CryptoError::Length);
        }
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&body[16..20]);
        let len = u32::from_be_bytes(len_bytes) as usize;
        let end = 20usize.checked_add(len).ok_or(CryptoError::Length)?;
        if end > body.len() {
            return Err(CryptoError::Length);
        }
        if &body[end..] != self.owner_key.as_bytes() {
            return Err(CryptoError::OwnerKey);
        }
        String::from_utf8(body[20..end].to_vec()).map_err(|_| CryptoError::Length)
    }

    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature(&self.token, timestamp, nonce, encrypt)
    }

    /// Checks a signature in constant time over the hex digits.
    pub fn verify(
        &self,
        signature_hex: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let want = self.sign(timestamp, nonce, encrypt);
        let got = signature_hex.to_ascii_lowercase();
        if want.len() != got.len() {
            return Err(CryptoError::Signature);
        }
        let diff = want
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(())
        } else {
            Err(CryptoError::Signature)
        }
    }

    /// The `{msg_signature, timeStamp, nonce, encrypt}` map of §5.1 "Required response".
    pub fn encrypted_map(&self, msg: &str, timestamp: &str, nonce: &str) -> serde_json::Value {
        let encrypt = self.encrypt(msg);
        serde_json::json!({
            "msg_signature": self.sign(timestamp, nonce, &encrypt),
            "timeStamp": timestamp,
            "nonce": nonce,
            "encrypt": encrypt,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_chinese() {
        let c = CallbackCrypto::new(
            "tok",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "dingcorp",
        )
        .unwrap();
        let e = c.encrypt("{\"name\":\"张三\"}");
        assert_eq!(c.decrypt(&e).unwrap(), "{\"name\":\"张三\"}");
        let other = CallbackCrypto::new(
            "tok",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "other",
        )
        .unwrap();
        assert_eq!(other.decrypt(&e), Err(CryptoError::OwnerKey));
        assert_eq!(
            CallbackCrypto::new("t", "short", "o").err(),
            Some(CryptoError::BadAesKey)
        );
    }
}
