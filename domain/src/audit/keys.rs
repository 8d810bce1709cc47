//! The server's secret key as the audit log uses it. The key is installation-wide, so it is
//! installed once per process ([`install`], by the server and the command line at start-up;
//! again to replace it) rather than passed to every function that records an event. Writing
//! or verifying a chain without an installed key is an error, never a plain link.
//!
//! Two keys are derived from each [`KeyVersion`] of the secret key, each for one purpose:
//!
//! - [`ChainKey`]: HMAC-SHA-256 over an event's canonical content, its predecessor's link and
//!   the key version ([`ChainKey::PURPOSE`]). Without it nobody can forge a link: not a
//!   copy of the database, not its administrator.
//! - the checkpoint signing key: an Ed25519 key whose seed is derived for
//!   [`CHECKPOINT_PURPOSE`]; its public half goes out with every checkpoint.

use std::sync::{PoisonError, RwLock};

use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use sea_orm::DbErr;
use sha2::Sha256;

use super::chain::Link;
use crate::secrets::{KeyVersion, SecretKey};

/// What the Ed25519 signing key of checkpoints is derived for.
pub const CHECKPOINT_PURPOSE: &str = "lifeline/audit-checkpoint/v1";

static INSTALLED: RwLock<Option<SecretKey>> = RwLock::new(None);

/// Makes `key` the one this process links, verifies and signs audit chains with, replacing
/// any installed before. Clones of `key` share its versions, so one that learns a new version
/// (after `lifeline rotate-key`) teaches this one too.
pub fn install(key: SecretKey) {
    *INSTALLED.write().unwrap_or_else(PoisonError::into_inner) = Some(key);
}

/// The installed key. Error: none was installed (a start-up step was skipped).
pub fn installed() -> Result<SecretKey, DbErr> {
    INSTALLED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| {
            DbErr::Custom(
                "the audit log needs the server's secret key, and none was installed \
                 (domain::audit::keys::install at start-up)"
                    .into(),
            )
        })
}

/// The MAC key of one key version for chain links.
#[derive(Clone)]
pub struct ChainKey {
    version: KeyVersion,
    key: [u8; 32],
}

impl ChainKey {
    /// What the MAC key of links is derived for.
    pub const PURPOSE: &'static str = "lifeline/audit-chain/v1";

    /// The MAC key of `version` of `secret`; `None` when the key holds no such version (even
    /// after re-reading its source).
    pub fn of(secret: &SecretKey, version: KeyVersion) -> Option<Self> {
        secret
            .derive_version(version, Self::PURPOSE)
            .map(|key| Self { version, key })
    }

    /// The MAC key of the installed key's newest version. Error: no key is installed.
    pub fn installed_current() -> Result<Self, DbErr> {
        let secret = installed()?;
        Self::of(&secret, secret.current_version()).ok_or_else(|| {
            DbErr::Custom("the secret key holds no version for the audit chain".into())
        })
    }

    /// The key version this MAC key is derived from.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The link value of `link` under this key: the hex HMAC-SHA-256 of its canonical content
    /// with the key version ([`Link::canonical`]), 64 characters like a plain hash.
    pub fn mac(&self, link: &Link<'_>) -> String {
        // HMAC takes keys of any length, so this cannot fail; the fallback is unreachable
        // and would only produce links that do not verify.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(link.canonical(Some(self.version)).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainKey(v{}, …)", self.version)
    }
}

/// The checkpoint signing key of `version` of `secret`; `None` when no such version is held.
pub(crate) fn signing_key(secret: &SecretKey, version: KeyVersion) -> Option<SigningKey> {
    secret
        .derive_version(version, CHECKPOINT_PURPOSE)
        .map(|seed| SigningKey::from_bytes(&seed))
}
