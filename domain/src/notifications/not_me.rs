//! The "This wasn't me" link every member notice carries (NIST SP 800-63B-4 §4.6: a way to
//! repudiate the event). It asks for nothing secret and signs nobody in: it names a member
//! and a moment, and lets whoever holds it stop that member's backup codes and end their
//! sessions ([`crate::incidents`]), once.
//!
//! A link's token is `<org>.<member>.<nonce>.<expires>.<key version>.<signature>`: the
//! nonce is 128 random bits (base64url), which the report stores so that a token works once;
//! `expires` is Unix seconds, [`VALID_FOR`] after the message; the signature is HMAC-SHA-256
//! under a key derived from the server's secret key for [`PURPOSE`], at the version named,
//! so links sent before a key rotation keep working until they expire. Base64url, not hex:
//! a message must hold no run of 12 digits, which could be taken for a code.

use std::sync::RwLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::{RngCore, rngs::OsRng};
use sha2::Sha256;

use crate::secrets::{KeyVersion, SecretKey};

/// What the link key is derived for, from the server's secret key.
pub const PURPOSE: &str = "lifeline/not-me-link/v1";
/// How long a link works after its message was written.
pub const VALID_FOR: Duration = Duration::days(7);
/// The path of the page a link opens, under the server's public address.
pub const PATH: &str = "/not-me";
/// The base address used when the server installed none: the README's `make run`.
const DEFAULT_BASE_URL: &str = "http://127.0.0.1:3000";
/// The longest token looked at.
const MAX_TOKEN_CHARS: usize = 200;

static BASE_URL: RwLock<Option<String>> = RwLock::new(None);

/// Sets the address links start with, e.g. `https://lifeline.example.com` (no trailing
/// slash needed): the server's public address, installed once at start.
pub fn install_base_url(url: &str) {
    let url = url.trim_end_matches('/').to_owned();
    *BASE_URL.write().unwrap_or_else(|e| e.into_inner()) = Some(url);
}

/// The installed base address, or `http://127.0.0.1:3000` when none was installed.
pub fn base_url() -> String {
    BASE_URL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
}

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotMe {
    pub org_id: i32,
    pub member_id: i32,
    /// 22 base64url characters; a report stores it, so a token works once.
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Cut, altered, or not signed by this server.
    #[error("this link is not one Lifeline sent, or it was changed on the way")]
    Invalid,
    /// Older than [`VALID_FOR`].
    #[error("this link has expired: links work for 7 days")]
    Expired,
}

impl NotMe {
    /// A new link's claim for `member_id` of `org_id`, written at `now`.
    pub fn new(org_id: i32, member_id: i32, now: DateTime<Utc>) -> Self {
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        Self {
            org_id,
            member_id,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            expires_at: now + VALID_FOR,
        }
    }

    /// The signed token, under the key's newest version.
    pub fn token(&self, key: &SecretKey) -> String {
        let version = key.current_version();
        let claim = format!(
            "{}.{}.{}.{}.{version}",
            self.org_id,
            self.member_id,
            self.nonce,
            self.expires_at.timestamp()
        );
        // The newest version is always held.
        let signature = mac(key, version)
            .map(|mut mac| {
                mac.update(claim.as_bytes());
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            })
            .unwrap_or_default();
        format!("{claim}.{signature}")
    }

    /// The whole link: the installed base address, [`PATH`], and the token.
    pub fn link(&self, key: &SecretKey) -> String {
        format!("{}{PATH}?token={}", base_url(), self.token(key))
    }

    /// What `token` names, if this server signed it and it has not expired at `now`.
    /// Errors: [`LinkError::Invalid`] for anything altered or unknown, [`LinkError::Expired`].
    pub fn verify(key: &SecretKey, token: &str, now: DateTime<Utc>) -> Result<Self, LinkError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_CHARS {
            return Err(LinkError::Invalid);
        }
        let (claim, signature) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Invalid)?;
        let parts: Vec<&str> = claim.split('.').collect();
        let [org, member, nonce, expires, version] = parts[..] else {
            return Err(LinkError::Invalid);
        };
        if nonce.len() != 22 {
            return Err(LinkError::Invalid);
        }
        let version: KeyVersion = version.parse().map_err(|_| LinkError::Invalid)?;
        let mut mac = mac(key, version).ok_or(LinkError::Invalid)?;
        mac.update(claim.as_bytes());
        // Constant-time comparison of the signature.
        mac.verify_slice(&signature)
            .map_err(|_| LinkError::Invalid)?;
        let expires_at = expires
            .parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or(LinkError::Invalid)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(Self {
            org_id: org.parse().map_err(|_| LinkError::Invalid)?,
            member_id: member.parse().map_err(|_| LinkError::Invalid)?,
            nonce: nonce.to_owned(),
            expires_at,
        })
    }
}

fn mac(key: &SecretKey, version: KeyVersion) -> Option<Hmac<Sha256>> {
    let derived = key.derive_version(version, PURPOSE)?;
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&derived);
    // A 64-byte key fills HMAC-SHA-256's block exactly: nothing can fail.
    Some(<Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_token_works_under_its_key_until_it_expires() {
        let key = SecretKey::generate();
        let claim = NotMe::new(7, 42, now());
        let token = claim.token(&key);
        assert_eq!(NotMe::verify(&key, &token, now()), Ok(claim.clone()));
        assert_eq!(
            NotMe::verify(&key, &token, now() + VALID_FOR - Duration::seconds(1)),
            Ok(claim)
        );
        assert_eq!(
            NotMe::verify(&key, &token, now() + VALID_FOR),
            Err(LinkError::Expired)
        );
        assert_eq!(
            NotMe::verify(&SecretKey::generate(), &token, now()),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn every_altered_token_is_invalid() {
        let key = SecretKey::generate();
        let token = NotMe::new(7, 42, now()).token(&key);
        let mut altered = vec![
            String::new(),
            token[..token.len() - 1].to_owned(),
            token.replacen("7.42.", "7.43.", 1),
            token.replacen("7.42.", "8.42.", 1),
            format!("{token}0"),
            token.replace('.', ""),
            "x".repeat(500),
        ];
        // Each character changed in turn.
        for at in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
            altered.push(String::from_utf8(bytes).unwrap());
        }
        for bad in altered {
            if bad == token {
                continue;
            }
            assert_eq!(
                NotMe::verify(&key, &bad, now()),
                Err(LinkError::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_link_sent_before_a_key_rotation_still_works() {
        let key = SecretKey::generate();
        let token = NotMe::new(7, 42, now()).token(&key);
        let rotated = key.with_new_version();
        assert!(NotMe::verify(&rotated, &token, now()).is_ok());
        assert!(rotated.current_version() > key.current_version());
    }
}
