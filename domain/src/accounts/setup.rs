//! The first run of an installation, in the browser: while no organization exists, the server
//! makes a one-time setup link (`/setup?token=…`) and prints it in its log, as Jenkins, Gitea
//! and Keycloak's bootstrap do. Whoever can read the log opens it and creates the first
//! organization and its owner.
//!
//! The rules: the link works once, and only while the installation holds no organization
//! (one made meanwhile with `lifeline create-org`, or through another instance's link, ends
//! it). The token is 32 random bytes; the server keeps only its SHA-256 digest, in memory, so
//! a restart makes a new link and the database never holds one.

use std::sync::{Mutex, PoisonError};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, PaginatorTrait, Statement,
    TransactionTrait,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AccountError, NewOrganization};
use crate::{
    entity::organization,
    hashing::PasswordHasher,
    identity::{Member, Organization},
    input::FieldError,
    secrets::Password,
};

/// Random bytes in a setup token.
const TOKEN_BYTES: usize = 32;

/// The installation's one-time setup link, or none: the digest of its token while it still
/// works. Shared by every request of one server process.
#[derive(Debug, Default)]
pub struct SetupLink {
    digest: Mutex<Option<[u8; 32]>>,
}

impl SetupLink {
    /// A new link and its token (43 characters of base64url), to print once and forget.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let link = Self {
            digest: Mutex::new(Some(digest(&token))),
        };
        (link, token)
    }

    /// No link: the installation already had an organization when the server started.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether `token` is this link's and it is still unused.
    fn opens_with(&self, token: &str) -> bool {
        opens(*self.lock(), token)
    }

    /// Takes the link for one request: of many at once with the right token, one gets it.
    fn claim(&self, token: &str) -> Option<Claim<'_>> {
        let mut held = self.lock();
        opens(*held, token).then(|| Claim {
            link: self,
            digest: held.take(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<[u8; 32]>> {
        self.digest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `token` hashes to `held`, compared in constant time.
fn opens(held: Option<[u8; 32]>, token: &str) -> bool {
    let presented = digest(token);
    held.is_some_and(|held| bool::from(held[..].ct_eq(&presented[..])))
}

/// A link taken by one request: given back when dropped unspent (the request failed before
/// the installation was set up), so that a passing error does not burn it.
struct Claim<'a> {
    link: &'a SetupLink,
    digest: Option<[u8; 32]>,
}

impl Claim<'_> {
    /// The link is used up: the installation is set up, or turned out to be already.
    fn spend(mut self) {
        self.digest = None;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(digest) = self.digest.take() {
            *self.link.lock() = Some(digest);
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The first organization and its owner, as typed on the setup page.
#[derive(Debug, Clone, Copy)]
pub struct FirstOrganization<'a> {
    /// The organization's name (its slug is made from it).
    pub name: &'a str,
    /// The owner's email address, which they sign in with.
    pub owner_email: &'a str,
    /// The owner's password, and the same typed again.
    pub password: &'a Password,
    pub confirm: &'a Password,
}

/// Whether the setup page may show its form for `token`.
///
/// Errors: [`AccountError::AlreadySetUp`] once any organization exists (whatever the token),
/// [`AccountError::SetupLinkInvalid`] for a token that is not the link's or was used.
pub async fn check(
    db: &DatabaseConnection,
    link: &SetupLink,
    token: &str,
) -> Result<(), AccountError> {
    if organization::Entity::find().count(db).await? > 0 {
        return Err(AccountError::AlreadySetUp);
    }
    if !link.opens_with(token) {
        return Err(AccountError::SetupLinkInvalid);
    }
    Ok(())
}

/// Sets the installation up: the first organization, its owner and `organization.created`,
/// in one transaction that first shuts out any other writer of organizations and then checks
/// that there is none. Uses the link up.
///
/// Errors: those of [`check`]; a field error on `name`, `email`, `password` or `confirm`
/// (the link still works); [`AccountError::Hash`] when the server is at its hashing
/// capacity, or a database error (the link still works). Nothing is written on any error.
pub async fn set_up(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    link: &SetupLink,
    token: &str,
    first: FirstOrganization<'_>,
    now: DateTime<Utc>,
) -> Result<(Organization, Member), AccountError> {
    check(db, link, token).await?;
    let new = NewOrganization::check(first.name, first.owner_email, first.password)?;
    if first.password.expose() != first.confirm.expose() {
        return Err(FieldError::new(
            "confirm",
            "The two passwords differ: type the same one twice.",
        )
        .into());
    }
    let claim = link.claim(token).ok_or(AccountError::SetupLinkInvalid)?;
    let password_hash = hasher.hash(first.password).await?;

    let txn = db.begin().await?;
    shut_out_other_writers(&txn).await?;
    if organization::Entity::find().count(&txn).await? > 0 {
        claim.spend();
        return Err(AccountError::AlreadySetUp);
    }
    let created = new.insert(&txn, password_hash, now).await?;
    txn.commit().await?;
    claim.spend();
    Ok(created)
}

/// Makes writers of organizations take turns with `txn` until it ends, so that "none exists"
/// still holds when it inserts: on PostgreSQL a table lock that conflicts with itself and
/// with inserts (reads go on); on SQLite a write, which takes the database's write lock.
async fn shut_out_other_writers(txn: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => "LOCK TABLE organization IN SHARE ROW EXCLUSIVE MODE",
        _ => "UPDATE organization SET id = id WHERE id < 0",
    };
    txn.execute(Statement::from_string(backend, sql)).await?;
    Ok(())
}
