//! Secret values as types that cannot leak by accident: no `Serialize`, a `Debug` that hides
//! the value, and the server's key, in all its versions, for sealing secrets that must be
//! stored (TOTP secrets) and for the keys derived from it (audit links and checkpoints).

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

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

/// A version of the server's key: 1 for the key an installation started with, then 2, 3, …
/// as `lifeline rotate-key` adds them. Stored beside what each version sealed or linked
/// (TOTP secrets, audit events, checkpoints), so that every version stays usable for what it
/// protects.
pub type KeyVersion = i32;

/// Re-reads the key's source (the key file) for versions added since it was loaded.
type Reload = Box<dyn Fn() -> Result<SecretKey, String> + Send + Sync>;

/// The server's secret key: one or more 256-bit versions, each kept for as long as anything
/// sealed, linked or signed under it is kept (see [`KeyVersion`]). The newest version seals
/// new secrets and links new audit events ([`SecretKey::current_version`]).
///
/// Clones share the versions: when one clone learns a new version (from [`SecretKey::refresh`]
/// or on meeting a version it does not hold), every clone has it, so a running server picks up
/// a version that `lifeline rotate-key` added without restarting.
///
/// Every server instance sharing a database must use the same key (all its versions).
#[derive(Clone)]
pub struct SecretKey(Arc<Ring>);

struct Ring {
    versions: RwLock<BTreeMap<KeyVersion, Key>>,
    reload: Option<Reload>,
}

/// Key text that is neither 64 hexadecimal digits nor `vN:<64 hex digits>` entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be 64 hexadecimal digits (32 bytes), e.g. from `openssl rand -hex 32`, or one \
     `vN:<64 hexadecimal digits>` entry per key version"
)]
pub struct BadSecretKey;

/// Encryption failed; with a valid key this does not happen in practice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a secret could not be sealed")]
pub struct SealError;

/// A sealed secret that does not open with this key (wrong key, or altered in storage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored secret could not be opened with this server's secret key")]
pub struct UnsealError;

/// A secret sealed by [`SecretKey::seal`]: the key version that sealed it, and nonce ‖
/// ciphertext. Both must be stored: [`SecretKey::open`] takes them back.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub version: KeyVersion,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(v{}, {} bytes)", self.version, self.bytes.len())
    }
}

const NONCE_LEN: usize = 12;

impl SecretKey {
    fn from_versions(versions: BTreeMap<KeyVersion, Key>) -> Self {
        Self(Arc::new(Ring {
            versions: RwLock::new(versions),
            reload: None,
        }))
    }

    /// A new key of one version (1), random from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::from_versions(BTreeMap::from([(1, random_key())]))
    }

    /// Parses a key as a key file or `LIFELINE_SECRET_KEY` holds it: either 64 hexadecimal
    /// digits (version 1, the format before key versions), or entries `vN:<64 hex digits>`
    /// (N ≥ 1, each once) separated by white space, commas or new lines. Text after `#` on a
    /// line is a comment.
    pub fn from_hex(text: &str) -> Result<Self, BadSecretKey> {
        let entries: Vec<&str> = text
            .lines()
            .map(|line| line.split_once('#').map_or(line, |(before, _)| before))
            .flat_map(|line| line.split(|c: char| c.is_whitespace() || c == ','))
            .filter(|entry| !entry.is_empty())
            .collect();
        let mut versions = BTreeMap::new();
        match entries.as_slice() {
            [bare] if !bare.contains(':') => {
                versions.insert(1, parse_key(bare)?);
            }
            [] => return Err(BadSecretKey),
            entries => {
                for entry in entries {
                    let (version, hex) = entry.split_once(':').ok_or(BadSecretKey)?;
                    let version: KeyVersion = version
                        .strip_prefix('v')
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n >= 1)
                        .ok_or(BadSecretKey)?;
                    if versions.insert(version, parse_key(hex)?).is_some() {
                        return Err(BadSecretKey);
                    }
                }
            }
        }
        Ok(Self::from_versions(versions))
    }

    /// The key as text that [`SecretKey::from_hex`] reads back: 64 hexadecimal digits for a
    /// key that has only version 1 (the format before key versions), otherwise one
    /// `vN:<hex>` line per version, oldest first.
    pub fn to_hex(&self) -> String {
        let versions = self.read();
        match versions.iter().collect::<Vec<_>>().as_slice() {
            [(1, key)] => hex::encode(key.as_slice()),
            all => all
                .iter()
                .map(|(version, key)| format!("v{version}:{}", hex::encode(key.as_slice())))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The same key that, on meeting a version it does not hold (and on
    /// [`SecretKey::refresh`]), asks `reload` for the key's source again and adds the versions
    /// found there. A version that is already held never changes.
    pub fn with_reload(
        self,
        reload: impl Fn() -> Result<SecretKey, String> + Send + Sync + 'static,
    ) -> Self {
        let versions = self.read().clone();
        Self(Arc::new(Ring {
            versions: RwLock::new(versions),
            reload: Some(Box::new(reload)),
        }))
    }

    /// The versions held, oldest first.
    pub fn versions(&self) -> Vec<KeyVersion> {
        self.read().keys().copied().collect()
    }

    /// The newest version: what seals new secrets and links new audit events.
    pub fn current_version(&self) -> KeyVersion {
        self.read().keys().next_back().copied().unwrap_or(1)
    }

    /// This key with one more version (the newest plus one), random from the operating
    /// system's CSPRNG; for `lifeline rotate-key`. The result shares nothing with `self`.
    pub fn with_new_version(&self) -> Self {
        let mut versions = self.read().clone();
        let next = versions
            .keys()
            .next_back()
            .map_or(1, |v| v.saturating_add(1));
        versions.insert(next, random_key());
        Self::from_versions(versions)
    }

    /// Asks the key's source (see [`SecretKey::with_reload`]) for versions added since it
    /// was read, and returns those it added. Errors: the source cannot be read, or it has a
    /// version this key holds with different bytes (versions must never change).
    pub fn refresh(&self) -> Result<Vec<KeyVersion>, String> {
        let Some(reload) = &self.0.reload else {
            return Ok(Vec::new());
        };
        let fresh = reload()?;
        let fresh = fresh.read().clone();
        let mut versions = self
            .0
            .versions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        for (version, key) in fresh {
            match versions.get(&version) {
                Some(held) if held.as_slice() != key.as_slice() => {
                    return Err(format!(
                        "key version {version} is not what it was when the server started; \
                         a version must never change (add a new one with `lifeline rotate-key`)"
                    ));
                }
                Some(_) => {}
                None => {
                    versions.insert(version, key);
                    added.push(version);
                }
            }
        }
        Ok(added)
    }

    /// Version `version`, re-reading the key's source once when it is not held.
    fn version(&self, version: KeyVersion) -> Option<Key> {
        if let Some(key) = self.read().get(&version) {
            return Some(*key);
        }
        match self.refresh() {
            Ok(added) if !added.is_empty() => {
                tracing::info!(?added, "learned new secret key versions");
            }
            Ok(_) => {}
            Err(problem) => tracing::warn!(%problem, "re-reading the secret key"),
        }
        self.read().get(&version).copied()
    }

    /// A 256-bit key for one `purpose`, derived from the key's oldest version (HMAC-SHA-256),
    /// so that each use of the server's key gets its own and none reveals another.
    ///
    /// For what cannot be re-keyed when a version is added (the pepper of backup-code digests,
    /// which would need every code's plaintext; device cookies): the oldest version stays in
    /// the key for the installation's life.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let oldest = self.read().values().next().copied();
        oldest.map_or([0; 32], |key| derive_from(&key, purpose))
    }

    /// Like [`SecretKey::derive`], from version `version`; `None` when that version is held
    /// neither here nor in the key's source.
    pub fn derive_version(&self, version: KeyVersion, purpose: &str) -> Option<[u8; 32]> {
        self.version(version).map(|key| derive_from(&key, purpose))
    }

    /// Encrypts `plaintext` under the newest version, bound to `context` (e.g. the owning row).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, SealError> {
        let version = self.current_version();
        let key = self.version(version).ok_or(SealError)?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        let ciphertext = ChaCha20Poly1305::new(&key)
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| SealError)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed { version, bytes })
    }

    /// Decrypts what [`SecretKey::seal`] produced under `version` for the same `context`,
    /// re-reading the key's source when `version` is not held.
    pub fn open(
        &self,
        version: KeyVersion,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, UnsealError> {
        if sealed.len() <= NONCE_LEN {
            return Err(UnsealError);
        }
        let key = self.version(version).ok_or(UnsealError)?;
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        ChaCha20Poly1305::new(&key)
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| UnsealError)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<KeyVersion, Key>> {
        self.0
            .versions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn random_key() -> Key {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    Key::from(bytes)
}

fn parse_key(text: &str) -> Result<Key, BadSecretKey> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|_| BadSecretKey)?
        .try_into()
        .map_err(|_| BadSecretKey)?;
    Ok(Key::from(bytes))
}

fn derive_from(key: &Key, purpose: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length, so this cannot fail; the fallback is unreachable.
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_slice()) else {
        return [0; 32];
    };
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(versions {:?}, …)", self.versions())
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
        let Sealed { version, bytes } = key.seal(b"JBSWY3DPEHPK3PXP", b"user:7").unwrap();
        assert_eq!(version, 1);
        assert!(!bytes.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        assert_eq!(key.open(1, &bytes, b"user:7").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(key.open(1, &bytes, b"user:8"), Err(UnsealError));
        assert_eq!(key.open(2, &bytes, b"user:7"), Err(UnsealError));
        assert_eq!(
            SecretKey::generate().open(1, &bytes, b"user:7"),
            Err(UnsealError)
        );
        let mut altered = bytes.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(key.open(1, &altered, b"user:7"), Err(UnsealError));
        assert_eq!(key.open(1, &bytes[..5], b"user:7"), Err(UnsealError));
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

    #[test]
    fn versioned_keys_round_trip_and_the_newest_seals() {
        let key = SecretKey::generate().with_new_version();
        assert_eq!(key.versions(), [1, 2]);
        assert_eq!(key.current_version(), 2);
        let text = key.to_hex();
        assert!(text.starts_with("v1:") && text.contains("\nv2:"), "{text}");
        let again = SecretKey::from_hex(&format!("# a comment\n{text}\n")).unwrap();
        assert_eq!(again.to_hex(), text);
        let sealed = key.seal(b"secret", b"ctx").unwrap();
        assert_eq!(sealed.version, 2);
        assert_eq!(again.open(2, &sealed.bytes, b"ctx").unwrap(), b"secret");
        // The oldest version derives what cannot be re-keyed.
        let v1_only = SecretKey::from_hex(text.lines().next().unwrap()).unwrap();
        assert_eq!(key.derive("pepper"), v1_only.derive("pepper"));
        assert_ne!(key.derive_version(2, "p"), key.derive_version(1, "p"));
        assert_eq!(key.derive_version(3, "p"), None);
        for bad in [
            "v0:00",
            "v1:zz",
            &format!("{text}\n{}", text.lines().next().unwrap()),
        ] {
            assert_eq!(SecretKey::from_hex(bad).unwrap_err(), BadSecretKey, "{bad}");
        }
    }

    #[test]
    fn a_key_learns_new_versions_from_its_source_and_refuses_changed_ones() {
        let first = SecretKey::generate();
        let source = Arc::new(RwLock::new(first.to_hex()));
        let reading = Arc::clone(&source);
        let key = first.with_reload(move || {
            SecretKey::from_hex(&reading.read().unwrap()).map_err(|e| e.to_string())
        });
        let rotated = key.with_new_version();
        let sealed = rotated.seal(b"secret", b"ctx").unwrap();
        assert_eq!(key.open(2, &sealed.bytes, b"ctx"), Err(UnsealError));
        *source.write().unwrap() = rotated.to_hex();
        // Met once, version 2 is read from the source; clones share it.
        let clone = key.clone();
        assert_eq!(key.open(2, &sealed.bytes, b"ctx").unwrap(), b"secret");
        assert_eq!(clone.current_version(), 2);
        *source.write().unwrap() = SecretKey::generate().to_hex();
        assert!(key.refresh().unwrap_err().contains("version 1"));
    }
}
