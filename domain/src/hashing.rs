//! Password hashing with argon2id at OWASP's parameters, run off the async runtime and
//! behind a bound on how many run at once (each takes 19 MiB and most of a core). Backup
//! codes are digested with the same function and parameters, behind the same bound.
//!
//! Every evaluation runs on the hasher's own threads, one per permit, at a lower CPU
//! priority than the threads that answer requests ([`HASHING_NICENESS`]): a flood of guesses
//! keeps both cores busy hashing, and pages must still be answered at once. On an otherwise
//! idle server the hashes get all the CPU there is; they only give way to other work.
//!
//! The bound holds whatever the callers do. A caller is first admitted ([`Admission`]): the
//! hasher admits as many callers as it runs hashes at once plus a queue of bounded length,
//! and tells the next one [`HashError::Busy`] at once (the server answers `503 Service
//! Unavailable` with `Retry-After`). The admission and then a permit move into the hashing
//! thread's job with the hash, so a request dropped mid-hash (its client went away) frees neither
//! before the hash is done.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version,
    password_hash::SaltString,
};
use rand::rngs::OsRng;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// How many callers the server lets wait for the hasher, per evaluation it runs at once,
/// unless configured otherwise ([`PasswordHasher::with_queue`]).
pub const DEFAULT_QUEUE_PER_PERMIT: usize = 8;

/// How much lower the hashing threads' CPU priority is than the server's (added to the
/// process's nice value, at most 19). At 10, a hashing thread weighs about a tenth of a
/// request thread when both want a core (Linux's CFS/EEVDF weights: 1024 at nice 0, 110 at
/// nice 10), so a page load under a flood waits for a hash only as long as its own turn.
pub const HASHING_NICENESS: i32 = 10;

/// The number of argon2 evaluations to run at once on this machine: its cores (as the
/// process may use them).
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Hashes and verifies passwords; cheap to clone, shared by the whole server.
#[derive(Clone)]
pub struct PasswordHasher {
    /// One permit per evaluation that may run at once.
    permits: Arc<Semaphore>,
    /// How many permits there are.
    concurrency: usize,
    /// Callers admitted now: waiting for a permit, or hashing (even for a caller gone).
    admitted: Arc<AtomicUsize>,
    /// How many callers are admitted at once: the permits and the queue behind them.
    places: usize,
    /// A hash of a random password: verifying against it when an account does not exist
    /// takes as long as verifying a real one, so timing does not tell which emails exist.
    dummy_hash: Arc<str>,
    /// Argon2 evaluations started, by this hasher and its clones.
    evaluations: Arc<AtomicU64>,
    /// argon2's working memory, kept between evaluations ([`Memory`]).
    memory: Memory,
    /// The threads evaluations run on: one per permit, at a lower priority ([`Threads`]).
    threads: Threads,
}

/// argon2's working memory (19 MiB an evaluation), kept between evaluations: a buffer is
/// taken for an evaluation and given back after it, so there are never more buffers than
/// evaluations running at once (the permits), and the server's memory for hashing stays at
/// that many buffers. Allocated afresh each time instead, every blocking thread's allocator
/// arena kept its own 19 MiB after the evaluation was done: a flood of wrong passwords lifted
/// the server past 1 GiB.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<Vec<Block>>>>);

impl Memory {
    /// Runs `work` with `blocks` blocks of working memory.
    fn with<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let taken = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buffer = taken.unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let output = work(buffer.get_mut(..blocks).unwrap_or_default());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buffer);
        output
    }
}

/// The hasher's own threads, one per permit, each at [`HASHING_NICENESS`] below the
/// process. Not tokio's blocking pool: its threads also serve files and other blocking
/// work, which must not inherit a hash's low priority.
#[derive(Clone)]
struct Threads(Arc<rayon_core::ThreadPool>);

impl Threads {
    fn start(count: usize) -> Result<Self, HashError> {
        rayon_core::ThreadPoolBuilder::new()
            .num_threads(count)
            .thread_name(|index| format!("argon2-{index}"))
            .start_handler(|_| {
                if let Err(error) = lower_this_threads_priority(HASHING_NICENESS) {
                    tracing::warn!(%error, "the hashing thread keeps the server's CPU priority");
                }
            })
            // A panic in an evaluation drops its answer's sender: the caller gets `Failed`.
            .panic_handler(|_| tracing::error!("an argon2 evaluation panicked"))
            .build()
            .map(|pool| Self(Arc::new(pool)))
            .map_err(|e| HashError::Failed(format!("the hashing threads did not start: {e}")))
    }

    /// Starts `work` with `held` (its permit and place) moved in: they are released when
    /// the work is done, not when whoever waits for the answer stops waiting.
    fn spawn_holding<H, T, W>(
        &self,
        held: H,
        work: W,
    ) -> impl std::future::Future<Output = Result<T, HashError>> + use<H, T, W>
    where
        H: Send + 'static,
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.0.spawn(move || {
            let output = work();
            drop(held);
            // The caller may have gone; the work was done all the same.
            let _ = answer.send(output);
        });
        async move {
            answered
                .await
                .map_err(|_| HashError::Failed("a hashing thread stopped mid-evaluation".into()))
        }
    }
}

/// Lowers the calling thread's CPU priority by `niceness` (Linux keeps a nice value per
/// thread; the result is capped at 19, the lowest). Raising it back would need privileges,
/// so this is only ever done to threads that do nothing else: the hasher's own, at
/// [`HASHING_NICENESS`].
///
/// Errors: the system call's, when the priority could not be read or set.
#[cfg(target_os = "linux")]
pub fn lower_this_threads_priority(niceness: i32) -> std::io::Result<()> {
    let thread = rustix::thread::gettid();
    let nice = rustix::process::getpriority_process(Some(thread))?;
    rustix::process::setpriority_process(Some(thread), (nice + niceness).min(19))?;
    Ok(())
}

/// Elsewhere, priorities are left as they are.
#[cfg(not(target_os = "linux"))]
pub fn lower_this_threads_priority(_niceness: i32) -> std::io::Result<()> {
    Ok(())
}

/// Hashing did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every permit is taken and the queue is full: nothing was run; try again shortly.
    #[error("the password hasher is busy: its queue is full")]
    Busy,
    /// The thread pool was shut down, or argon2 refused its input.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl PasswordHasher {
    /// A hasher that runs at most `concurrency` argon2 evaluations at once; callers wait for
    /// them however many there are, until [`PasswordHasher::with_queue`] bounds the queue.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let concurrency = concurrency.max(1);
        let dummy = Password::new(hex::encode(rand::random::<[u8; 16]>()));
        let dummy_hash = hash_blocking(&dummy)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            admitted: Arc::new(AtomicUsize::new(0)),
            places: usize::MAX,
            dummy_hash: dummy_hash.into(),
            evaluations: Arc::new(AtomicU64::new(0)),
            memory: Memory::default(),
            threads: Threads::start(concurrency)?,
        })
    }

    /// A hasher bounded by the machine's cores.
    pub fn for_this_machine() -> Result<Self, HashError> {
        Self::new(default_concurrency())
    }

    /// This hasher with at most `queue` callers waiting while every permit is taken (0: none
    /// wait). Set it before the hasher is cloned: clones share their permits and callers.
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.places = self.concurrency.saturating_add(queue);
        self
    }

    /// How many argon2 evaluations this hasher (and its clones) started: what a check costs,
    /// counted (the server's work per answer is the same whatever the answer says).
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Acquire)
    }

    /// A place for one caller's work, taken before anything else the work needs (a limit
    /// reserved, a row read), or [`HashError::Busy`] at once when the queue is full.
    pub fn admit(&self) -> Result<Admission, HashError> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < self.places).then_some(now + 1)
            })
            .map_err(|_| HashError::Busy)?;
        Ok(Admission {
            hasher: self.clone(),
            place: Place(Arc::clone(&self.admitted)),
        })
    }

    /// The argon2id PHC string for `password`, with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        self.admit()?.run(move || hash_blocking(&password)).await?
    }

    /// [`Admission::matches`], admitted now.
    pub async fn matches(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        self.admit()?.matches(password, stored).await
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
        self.admit()?.digest(secret, salt, pepper, params).await
    }

    /// [`PasswordHasher::digest`] of each of `secrets`, in order, as one caller: it takes
    /// one place, then as many permits as it can use (up to all of them) at once, and runs
    /// the digests on that many threads.
    pub async fn digest_all(
        &self,
        secrets: Vec<Vec<u8>>,
        salt: Vec<u8>,
        pepper: Arc<[u8; 32]>,
        params: DigestParams,
    ) -> Result<Vec<[u8; 32]>, HashError> {
        if secrets.is_empty() {
            return Ok(Vec::new());
        }
        let admission = self.admit()?;
        self.evaluations.fetch_add(
            u64::try_from(secrets.len()).unwrap_or(u64::MAX),
            Ordering::AcqRel,
        );
        let per_thread = secrets.len().div_ceil(self.concurrency);
        let mut secrets = secrets.into_iter();
        let mut chunks = Vec::new();
        loop {
            let chunk: Vec<Vec<u8>> = secrets.by_ref().take(per_thread).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        let mut permits = admission.permits(chunks.len()).await?;
        // One permit per thread, each released when that thread's digests are done; the
        // place goes with the last to finish.
        let place = Arc::new(admission.place);
        let mut per_chunk = Vec::with_capacity(chunks.len());
        while permits.num_permits() > 1 {
            match permits.split(1) {
                Some(one) => per_chunk.push(one),
                None => break,
            }
        }
        per_chunk.push(permits);
        let salt: Arc<[u8]> = salt.into();
        let tasks: Vec<_> = chunks
            .into_iter()
            .zip(per_chunk)
            .map(|(chunk, permit)| {
                let (salt, pepper, place) =
                    (Arc::clone(&salt), Arc::clone(&pepper), Arc::clone(&place));
                let memory = self.memory.clone();
                self.threads.spawn_holding((permit, place), move || {
                    chunk
                        .iter()
                        .map(|secret| digest_blocking(&memory, secret, &salt, &pepper, params))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        drop(place);
        let mut digests = Vec::new();
        for task in tasks {
            digests.extend(task.await??);
        }
        Ok(digests)
    }
}

/// A caller's place with the [`PasswordHasher`] ([`PasswordHasher::admit`]): it stays taken
/// until the caller's work is done, or until the caller drops it before the work started.
#[must_use = "an admission is spent by the work it was taken for"]
pub struct Admission {
    hasher: PasswordHasher,
    place: Place,
}

impl Admission {
    /// Whether `password` matches `stored`; with no stored hash it verifies against the
    /// dummy hash and answers false, in the same time.
    pub async fn matches(
        self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let password = password.clone();
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.hasher.dummy_hash.to_string(), false),
        };
        let memory = self.hasher.memory.clone();
        let matched = self
            .run(move || verify_blocking(&memory, &password, &hash))
            .await?;
        Ok(matched && real)
    }

    /// [`PasswordHasher::digest`], in the place taken already.
    pub async fn digest(
        self,
        secret: Vec<u8>,
        salt: Vec<u8>,
        pepper: Arc<[u8; 32]>,
        params: DigestParams,
    ) -> Result<[u8; 32], HashError> {
        let memory = self.hasher.memory.clone();
        self.run(move || digest_blocking(&memory, &secret, &salt, &pepper, params))
            .await?
    }

    /// Runs `work` on the hashing threads under one permit, waiting for it in the queue.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self.permits(1).await?;
        self.hasher.evaluations.fetch_add(1, Ordering::AcqRel);
        let threads = self.hasher.threads.clone();
        threads.spawn_holding((permit, self.place), work).await
    }

    /// `n` permits (at most the hasher's) at once, when they are free.
    async fn permits(&self, n: usize) -> Result<OwnedSemaphorePermit, HashError> {
        let n = u32::try_from(n.clamp(1, self.hasher.concurrency)).unwrap_or(1);
        Arc::clone(&self.hasher.permits)
            .acquire_many_owned(n)
            .await
            .map_err(|_| HashError::Failed("the hasher's permits are closed".into()))
    }
}

/// One admitted caller, counted until dropped.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn digest_blocking(
    memory: &Memory,
    secret: &[u8],
    salt: &[u8],
    pepper: &[u8; 32],
    params: DigestParams,
) -> Result<[u8; 32], HashError> {
    let params = Params::new(params.memory_kib, params.passes, params.lanes, Some(32))
        .map_err(|e| HashError::Failed(e.to_string()))?;
    let blocks = params.block_count();
    let argon2 = Argon2::new_with_secret(pepper, Algorithm::Argon2id, Version::V0x13, params)
        .map_err(|e| HashError::Failed(e.to_string()))?;
    let mut out = [0u8; 32];
    memory
        .with(blocks, |blocks| {
            argon2.hash_password_into_with_memory(secret, salt, &mut out, blocks)
        })
        .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(out)
}

fn hash_blocking(password: &Password) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`, evaluated in `memory`: what argon2's
/// own `verify_password` does (the algorithm, version, parameters and salt come from the
/// stored hash, so stronger future settings still verify; the outputs are compared in
/// constant time), without allocating its working memory each time.
fn verify_blocking(memory: &Memory, password: &Password, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let computed = memory.with(blocks, |blocks| {
        argon2.hash_password_into_with_memory(password.expose().as_bytes(), salt, &mut out, blocks)
    });
    computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
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
        let matches = |password: &'static str, stored: &str| {
            let (hasher, stored) = (hasher.clone(), stored.to_owned());
            async move {
                hasher
                    .matches(&Password::new(password), Some(&stored))
                    .await
                    .unwrap()
            }
        };
        assert!(matches("correct horse", &hash).await);
        assert!(!matches("correct horsE", &hash).await);
        assert!(!matches("correct horse", "garbage").await);
        // Hashes made by argon2 itself with other parameters, algorithms and versions
        // verify as argon2's own verifier verifies them: the stored hash decides.
        for (algorithm, version, params) in [
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8 * 1024, 1, 1, None),
            ),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(16 * 1024, 3, 2, Some(16)),
            ),
            (
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(8 * 1024, 2, 1, None),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x10,
                Params::new(8 * 1024, 2, 1, None),
            ),
        ] {
            let argon2 = Argon2::new(algorithm, version, params.unwrap());
            let salt = SaltString::generate(&mut OsRng);
            let other = argon2
                .hash_password(b"correct horse", &salt)
                .unwrap()
                .to_string();
            assert!(matches("correct horse", &other).await, "{other}");
            assert!(!matches("correct horsE", &other).await, "{other}");
            let parsed = PasswordHash::new(&other).unwrap();
            assert!(
                argon2::PasswordVerifier::verify_password(&argon2, b"correct horse", &parsed)
                    .is_ok()
            );
        }
    }

    /// However many evaluations run, the hasher keeps at most one working memory per permit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn working_memory_is_kept_one_buffer_per_permit() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash(&Password::new("correct horse")).await.unwrap();
        let checks = (0..16).map(|n| {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            tokio::spawn(async move {
                let typed = if n % 2 == 0 { "correct horse" } else { "wrong" };
                hasher
                    .matches(&Password::new(typed), Some(&hash))
                    .await
                    .unwrap()
            })
        });
        let answers: Vec<bool> = futures_join(checks).await;
        assert_eq!(answers.iter().filter(|matched| **matched).count(), 8);
        let pepper = Arc::new([7u8; 32]);
        let digests = hasher
            .digest_all(
                (0..6u8).map(|n| vec![n; 12]).collect(),
                vec![1; 16],
                pepper,
                DigestParams::CURRENT,
            )
            .await
            .unwrap();
        assert_eq!(digests.len(), 6);
        // The same digests as argon2 computes with memory of its own: stored digests still
        // verify.
        for (n, digest) in (0..6u8).zip(&digests) {
            let params = Params::new(MEMORY_KIB, PASSES, LANES, Some(32)).unwrap();
            let plain =
                Argon2::new_with_secret(&[7u8; 32], Algorithm::Argon2id, Version::V0x13, params)
                    .unwrap();
            let mut out = [0u8; 32];
            plain
                .hash_password_into(&[n; 12], &[1; 16], &mut out)
                .unwrap();
            assert_eq!(&out, digest);
        }
        let kept = hasher.memory.0.lock().unwrap();
        assert!(
            (1..=2).contains(&kept.len()),
            "{} buffers kept for 2 permits",
            kept.len()
        );
        let blocks = DigestParams::CURRENT.memory_kib as usize;
        assert!(kept.iter().all(|buffer| buffer.len() == blocks));
    }

    /// Awaits every task, in order.
    async fn futures_join<T>(
        tasks: impl IntoIterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
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
        assert!(!hasher.matches(&Password::new(""), None).await.unwrap());
        assert!(
            !hasher
                .matches(&Password::new("anything"), None)
                .await
                .unwrap()
        );
    }

    /// Waits (up to 10 s) until `condition` holds.
    async fn until(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..2000 {
            if condition() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("never happened: {what}");
    }

    /// A blocking job that holds its permit until `release` is sent, reporting when it runs.
    fn held_job() -> (
        impl FnOnce() + Send + 'static,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started, on_start) = std::sync::mpsc::channel();
        let (release, on_release) = std::sync::mpsc::channel::<()>();
        let job = move || {
            let _ = started.send(());
            let _ = on_release.recv();
        };
        (job, on_start, release)
    }

    fn admitted(hasher: &PasswordHasher) -> usize {
        hasher.admitted.load(Ordering::Acquire)
    }

    /// Hashes give way to the threads that answer requests: a flood of guesses must not
    /// slow every page down. The runtime's own blocking pool keeps the server's priority.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn evaluations_run_below_the_servers_cpu_priority() {
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let server = nice();
        let lowered = (server + HASHING_NICENESS).min(19);
        let hasher = PasswordHasher::new(2).unwrap();
        assert_eq!(hasher.admit().unwrap().run(nice).await.unwrap(), lowered);
        // Two at once: each of the hasher's threads.
        let (first, second) = tokio::join!(
            hasher.admit().unwrap().run(nice),
            hasher.admit().unwrap().run(nice)
        );
        assert_eq!((first.unwrap(), second.unwrap()), (lowered, lowered));
        assert_eq!(tokio::task::spawn_blocking(nice).await.unwrap(), server);
    }

    #[tokio::test]
    async fn a_caller_past_the_queue_is_told_busy_at_once() {
        let hasher = PasswordHasher::new(1).unwrap().with_queue(1);
        let (job, started, release) = held_job();
        let running = tokio::spawn(hasher.admit().unwrap().run(job));
        until("the first caller hashes", || started.try_recv().is_ok()).await;
        let queued = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(&Password::new("second caller")).await }
        });
        until("the second caller waits", || admitted(&hasher) == 2).await;

        // The third is refused without waiting, whatever it asked for.
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            hasher.hash(&Password::new("third caller")),
        )
        .await
        .expect("answered at once");
        assert!(matches!(third, Err(HashError::Busy)), "{third:?}");
        assert!(matches!(
            hasher.matches(&Password::new("x"), None).await,
            Err(HashError::Busy)
        ));
        let digest = hasher
            .digest(
                b"1".to_vec(),
                b"salt".to_vec(),
                Arc::new([0; 32]),
                DigestParams::CURRENT,
            )
            .await;
        assert!(matches!(digest, Err(HashError::Busy)));

        // Once the first is done, the second runs, and callers are served again.
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(queued.await.unwrap().is_ok());
        assert_eq!(admitted(&hasher), 0);
        assert!(hasher.hash(&Password::new("later")).await.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_caller_keeps_its_permit_until_its_hash_is_done() {
        let hasher = PasswordHasher::new(1).unwrap().with_queue(1);
        let (job, started, release) = held_job();
        let caller = tokio::spawn(hasher.admit().unwrap().run(job));
        until("the hash starts", || started.try_recv().is_ok()).await;

        // The caller goes away (its client disconnected) while its hash runs.
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(
            hasher.permits.available_permits(),
            0,
            "the hash still runs, so its permit is still taken"
        );
        assert_eq!(admitted(&hasher), 1, "and its place");

        // The next caller waits for that hash instead of starting a second one beside it,
        // and the queue is as full as if the first caller were still there.
        let next = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(&Password::new("next")).await }
        });
        until("the next caller waits", || admitted(&hasher) == 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!next.is_finished());
        assert!(matches!(hasher.admit(), Err(HashError::Busy)));

        // The hash finishes: its permit goes to the next caller.
        release.send(()).unwrap();
        assert!(next.await.unwrap().is_ok());
        assert_eq!(hasher.permits.available_permits(), 1);
        assert_eq!(admitted(&hasher), 0);
    }

    #[tokio::test]
    async fn a_caller_dropped_while_waiting_gives_its_place_back() {
        let hasher = PasswordHasher::new(1).unwrap().with_queue(1);
        let (job, started, release) = held_job();
        let running = tokio::spawn(hasher.admit().unwrap().run(job));
        until("the hash starts", || started.try_recv().is_ok()).await;
        let waiter = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(&Password::new("waiting")).await }
        });
        until("the waiter queues", || admitted(&hasher) == 2).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(admitted(&hasher), 1);

        // Its place is free for another caller.
        let next = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(&Password::new("next")).await }
        });
        until("the next caller queues", || admitted(&hasher) == 2).await;
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(next.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_admission_holds_its_place_from_before_the_work() {
        let hasher = PasswordHasher::new(1).unwrap().with_queue(0);
        let first = hasher.admit().unwrap();
        assert!(matches!(hasher.admit(), Err(HashError::Busy)));
        // Given up before its work: the place is free again.
        drop(first);
        let second = hasher.admit().unwrap();
        assert!(!second.matches(&Password::new("x"), None).await.unwrap());
        assert_eq!(admitted(&hasher), 0, "spent by its work");
    }

    #[tokio::test]
    async fn many_digests_are_one_caller_in_the_queue() {
        // No queue at all: a set of twenty codes still goes through as one caller.
        let hasher = PasswordHasher::new(2).unwrap().with_queue(0);
        let pepper = Arc::new([7u8; 32]);
        let secrets: Vec<Vec<u8>> = (0..20).map(|i| format!("{i:012}").into_bytes()).collect();
        let all = hasher
            .digest_all(
                secrets.clone(),
                b"0123456789abcdef".to_vec(),
                Arc::clone(&pepper),
                DigestParams::CURRENT,
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 20);
        for (secret, digest) in secrets.into_iter().zip(&all) {
            let one = hasher
                .digest(
                    secret,
                    b"0123456789abcdef".to_vec(),
                    Arc::clone(&pepper),
                    DigestParams::CURRENT,
                )
                .await
                .unwrap();
            assert_eq!(&one, digest, "in order");
        }
        assert_eq!(hasher.permits.available_permits(), 2);
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
