//! Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser
//! that completed a sign-in for an account gets a cookie naming the account and a random
//! device id, signed with a key derived from the server's secret key. Sign-in attempts from
//! that browser are counted apart from every other source ([`crate::lockout::Attempter`]), so
//! a stranger who locks an account's untrusted sources does not lock its owner out.
//!
//! The cookie proves only that this browser signed in to that account before; it is no
//! credential and lets nothing through on its own.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secrets::SecretKey;

/// What the device key is derived for, from the server's secret key.
const PURPOSE: &str = "lifeline/device-cookie/v1";
/// Random bytes in a device id.
const ID_BYTES: usize = 16;
/// Longest cookie value looked at.
const MAX_VALUE_CHARS: usize = 200;

/// A browser that signed in to `member_id` before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub member_id: i32,
    /// Random, hex.
    pub id: String,
}

impl Device {
    /// A new device id for `member_id`.
    pub fn new(member_id: i32) -> Self {
        let mut id = [0u8; ID_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self {
            member_id,
            id: hex::encode(id),
        }
    }

    /// The cookie value: `<member id>.<device id>.<signature>`.
    pub fn cookie_value(&self, key: &SecretKey) -> String {
        let claim = format!("{}.{}", self.member_id, self.id);
        let mut mac = mac(key);
        mac.update(claim.as_bytes());
        format!("{claim}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The device a cookie value names, if this server signed it.
    pub fn from_cookie_value(key: &SecretKey, value: &str) -> Option<Self> {
        if value.len() > MAX_VALUE_CHARS {
            return None;
        }
        let (claim, signature) = value.rsplit_once('.')?;
        let signature = hex::decode(signature).ok()?;
        let mut mac = mac(key);
        mac.update(claim.as_bytes());
        // Constant-time comparison of the signature.
        mac.verify_slice(&signature).ok()?;
        let (member_id, id) = claim.split_once('.')?;
        Some(Self {
            member_id: member_id.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

fn mac(key: &SecretKey) -> Hmac<Sha256> {
    // A 32-byte key fills HMAC's fixed-size key input directly: nothing can fail.
    let derived: [u8; 32] = key.derive(PURPOSE);
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&derived);
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_names_its_device_only_under_the_key_that_signed_it() {
        let key = SecretKey::generate();
        let device = Device::new(42);
        let value = device.cookie_value(&key);
        assert_eq!(
            Device::from_cookie_value(&key, &value),
            Some(device.clone())
        );
        assert_eq!(
            Device::from_cookie_value(&SecretKey::generate(), &value),
            None
        );
        let forged = value.replacen("42.", "43.", 1);
        assert_eq!(Device::from_cookie_value(&key, &forged), None);
        for junk in ["", "42", "42.abc", "x.y.z", &"9".repeat(500)] {
            assert_eq!(Device::from_cookie_value(&key, junk), None, "{junk:?}");
        }
    }
}
