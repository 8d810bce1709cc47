//! Password hashing with argon2id at OWASP's parameters, run off the async runtime and
//! behind a bound on how many run at once (each takes 19 MiB and most of a core). Backup
//! codes are digested with the same function and parameters, behind the same bound.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::SaltString,
};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use crate::secrets::Password;

/// OWASP's argon2id minimum: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The argon2id parameters of a digest, stored next to it so that digests made with other
/// settings still verify after the defaults change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestParams {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl DigestParams {
    /// The parameters new digests are made with (the same as for passwords).
    pub const CURRENT: Self = Self {
        memory_kib: MEMORY_KIB,
        passes: PASSES,
        lanes: LANES,
    };

    /// Reads `argon2id,v=19,m=19456,t=2,p=1`, as [`fmt::Display`](std::fmt::Display) writes it.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("argon2id,v=19,m=")?;
        let (memory, rest) = rest.split_once(",t=")?;
        let (passes, lanes) = rest.split_once(",p=")?;
        Some(Self {
            memory_kib: memory.parse().ok()?,
            passes: passes.parse().ok()?,
            lanes: lanes.parse().ok()?,
        })
    }
}

impl std::fmt::Display for DigestParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "argon2id,v=19,m={},t={},p={}",
            self.memory_kib, self.passes, self.lanes
        )
    }
}

/// Hashes and verifies passwords; cheap to clone, shared by the whole server.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A hash of a random password: verifying against it when an account does not exist
    /// takes as long as verifying a real one, so timing does not tell which emails exist.
    dummy_hash: Arc<str>,
}

/// Hashing failed (the thread pool was shut down, or argon2 refused its input).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl HashError {
    pub(crate) fn from_message(message: String) -> Self {
        Self(message)
    }
}

impl PasswordHasher {
    /// A hasher that runs at most `concurrency` argon2 evaluations at once.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let dummy = Password::new(hex::encode(rand::random::<[u8; 16]>()));
        let dummy_hash = hash_blocking(&dummy)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// A hasher bounded by the machine's cores.
    pub fn for_this_machine() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores)
    }

    /// The argon2id PHC string for `password`, with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `stored`; with no stored hash it verifies against the
    /// dummy hash and answers false, in the same time.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> bool {
        let password = password.clone();
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let matched = self
            .run(move || verify_blocking(&password, &hash))
            .await
            .unwrap_or(false);
        matched && real
    }

    /// The 32-byte argon2id digest of `secret` with `salt`, keyed with `pepper` (argon2's
    /// secret input), at `params`.
    pub async fn digest(
        &self,
        secret: Vec<u8>,
        salt: Vec<u8>,
        pepper: Arc<[u8; 32]>,
        params: DigestParams,
    ) -> Result<[u8; 32], HashError> {
        self.run(move || {
            let params = Params::new(params.memory_kib, params.passes, params.lanes, Some(32))
                .map_err(|e| HashError(e.to_string()))?;
            let argon2 =
                Argon2::new_with_secret(&pepper[..], Algorithm::Argon2id, Version::V0x13, params)
                    .map_err(|e| HashError(e.to_string()))?;
            let mut out = [0u8; 32];
            argon2
                .hash_password_into(&secret, &salt, &mut out)
                .map_err(|e| HashError(e.to_string()))?;
            Ok(out)
        })
        .await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError(e.to_string()))
    }
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &Password) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

fn verify_blocking(password: &Password, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored hash, so stronger future settings still verify.
    argon2().is_ok_and(|argon2| {
        argon2
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash(&Password::new("correct horse")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        assert!(
            hasher
                .verify(&Password::new("correct horse"), Some(&hash))
                .await
        );
        assert!(
            !hasher
                .verify(&Password::new("correct horsE"), Some(&hash))
                .await
        );
        assert!(
            !hasher
                .verify(&Password::new("correct horse"), Some("garbage"))
                .await
        );
    }

    #[test]
    fn digest_params_round_trip_through_text() {
        let text = DigestParams::CURRENT.to_string();
        assert_eq!(text, "argon2id,v=19,m=19456,t=2,p=1");
        assert_eq!(DigestParams::parse(&text), Some(DigestParams::CURRENT));
        for bad in ["", "argon2i,v=19,m=1,t=1,p=1", "argon2id,v=19,m=x,t=2,p=1"] {
            assert_eq!(DigestParams::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn digests_depend_on_secret_salt_and_pepper() {
        let hasher = PasswordHasher::new(2).unwrap();
        let digest = |secret: &[u8], salt: &[u8], pepper: u8| {
            hasher.digest(
                secret.to_vec(),
                salt.to_vec(),
                Arc::new([pepper; 32]),
                DigestParams::CURRENT,
            )
        };
        let base = digest(b"482109375516", b"0123456789abcdef", 1)
            .await
            .unwrap();
        assert_eq!(
            base,
            digest(b"482109375516", b"0123456789abcdef", 1)
                .await
                .unwrap()
        );
        assert_ne!(
            base,
            digest(b"482109375517", b"0123456789abcdef", 1)
                .await
                .unwrap()
        );
        assert_ne!(
            base,
            digest(b"482109375516", b"0123456789abcdeF", 1)
                .await
                .unwrap()
        );
        assert_ne!(
            base,
            digest(b"482109375516", b"0123456789abcdef", 2)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn no_account_never_verifies() {
        let hasher = PasswordHasher::new(1).unwrap();
        assert!(!hasher.verify(&Password::new(""), None).await);
        assert!(!hasher.verify(&Password::new("anything"), None).await);
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let hasher = PasswordHasher::new(2).unwrap();
        let password = Password::new("same");
        assert_ne!(
            hasher.hash(&password).await.unwrap(),
            hasher.hash(&password).await.unwrap()
        );
    }
}
