//! Secret values as types that cannot leak by accident: no `Serialize`, a `Debug` that hides
//! the value, and the server's key for sealing secrets that must be stored (TOTP secrets).

use std::fmt;

use chacha20poly1305::{
    ChaCha20Poly1305, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::{RngCore, rngs::OsRng};

/// A password as typed by a person. It is hashed and dropped; it is never stored or logged.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// The server's 256-bit key for sealing stored secrets (ChaCha20-Poly1305).
///
/// Every server instance sharing a database must use the same key.
#[derive(Clone)]
pub struct SecretKey(Key);

/// A key that is not 64 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 64 hexadecimal digits (32 bytes), e.g. from `openssl rand -hex 32`")]
pub struct BadSecretKey;

/// Encryption failed; with a valid key this does not happen in practice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a secret could not be sealed")]
pub struct SealError;

/// A sealed secret that does not open with this key (wrong key, or altered in storage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored secret could not be opened with this server's secret key")]
pub struct UnsealError;

const NONCE_LEN: usize = 12;

impl SecretKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(Key::from(bytes))
    }

    /// Parses 64 hexadecimal digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, BadSecretKey> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .map_err(|_| BadSecretKey)?
            .try_into()
            .map_err(|_| BadSecretKey)?;
        Ok(Self(Key::from(bytes)))
    }

    /// The key as 64 hexadecimal digits, for writing a new key file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_slice())
    }

    /// A 256-bit key for one `purpose`, derived from this one (HMAC-SHA-256), so that each use
    /// of the server's key gets its own and none reveals another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        // HMAC takes keys of any length, so this cannot fail; the fallback is unreachable.
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_slice()) else {
            return [0; 32];
        };
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the owning row), as nonce ‖ ciphertext.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(&self.0);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| SealError)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`SecretKey::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, UnsealError> {
        if sealed.len() <= NONCE_LEN {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(&self.0);
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| UnsealError)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(…)");
        let key = SecretKey::generate();
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"JBSWY3DPEHPK3PXP", b"user:7").unwrap();
        assert!(!sealed.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        assert_eq!(key.open(&sealed, b"user:7").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(key.open(&sealed, b"user:8"), Err(UnsealError));
        assert_eq!(
            SecretKey::generate().open(&sealed, b"user:7"),
            Err(UnsealError)
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(key.open(&altered, b"user:7"), Err(UnsealError));
        assert_eq!(key.open(&sealed[..5], b"user:7"), Err(UnsealError));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_by_key() {
        let key = SecretKey::generate();
        assert_eq!(key.derive("a"), key.derive("a"));
        assert_ne!(key.derive("a"), key.derive("b"));
        assert_ne!(key.derive("a"), SecretKey::generate().derive("a"));
        assert_ne!(
            key.derive("a").as_slice(),
            hex::decode(key.to_hex()).unwrap()
        );
    }

    #[test]
    fn keys_round_trip_through_hex_and_refuse_bad_text() {
        let key = SecretKey::generate();
        let again = SecretKey::from_hex(&format!(" {}\n", key.to_hex())).unwrap();
        assert_eq!(again.to_hex(), key.to_hex());
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(62), &"a".repeat(66)] {
            assert_eq!(SecretKey::from_hex(bad).unwrap_err(), BadSecretKey, "{bad}");
        }
    }
}
