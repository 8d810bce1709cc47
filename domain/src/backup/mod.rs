//! Data backups of one organization (issue 15): everything it owns, read at one instant,
//! in an archive only its passphrase opens, and a restore that brings it back exactly:
//! into an empty database with its ids ([`restore`]), or as a new organization beside the
//! ones a database holds, under new ids and a free slug ([`restore_as_new_organization`];
//! the renumbering's rules are in `backup/renumber.rs`).
//!
//! # The archive
//!
//! An [age](https://age-encryption.org/v1) file encrypted to one passphrase (age's scrypt
//! recipient), holding a tar stream:
//!
//! 1. `manifest.json` ([`Manifest`]): the format, the database schema (the last migration
//!    applied), when it was taken, the organization, and for each data file its table, row
//!    count and SHA-256; the audit chain's head, signed with the installation's checkpoint
//!    key ([`crate::audit::checkpoint`]); and which backup-code pepper the code digests need.
//! 2. `tables/<table>/<part>.ndjson`: the rows of each table of [`Table::ALL`], in that order
//!    (the order a restore writes them), at most [`tables::PART_ROWS`] per part.
//!
//! age authenticates every chunk and the end of the stream, so a changed or cut archive does
//! not decrypt; the manifest's digests and counts are checked as well.
//!
//! # Consistency
//!
//! A backup reads in one transaction: `REPEATABLE READ, READ ONLY` on PostgreSQL, and on
//! SQLite a read transaction (in WAL mode it sees the database as of its first read), so the
//! archive is the organization at one instant while members go on signing in.
//!
//! # Secrets
//!
//! Password hashes and code digests are copied as stored (they are one-way). TOTP secrets and
//! webhook signing secrets, sealed in the database under the server's key, are opened and
//! put in the archive as they are, under the archive's own encryption; a restore seals them
//! under the restoring installation's key. Backup-code and issued-code digests are keyed with
//! the installation's pepper, which never leaves it: restored into an installation whose
//! pepper differs, those codes cannot be checked, so the restore ends them (the members keep
//! their authenticator and make new ones) and says how many.
//!
//! What is not in a backup: mail and webhook deliveries waiting in the outbox (a restore
//! must not send them again), sessions, personal access tokens for the API (credentials like
//! sessions: a restored organization makes new ones), and the sign-in throttles' counters.

pub mod jobs;
mod renumber;
mod tables;

use std::io::{Read, Write};

use age::secrecy::SecretString;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, IsolationLevel, QueryFilter, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use tables::Table;

use crate::{
    audit::{self, AuditAction, Event, Outcome, Source, checkpoint::SignedCheckpoint},
    entity::{organization, user_account},
    identity::Member,
    input::FieldError,
    lookup_secret,
    secrets::{KeyVersion, SecretKey},
};

/// The `format` of archives this build writes and reads.
pub const FORMAT: &str = "lifeline-backup/v1";

/// The fewest characters a backup passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// The lowest zxcvbn score (0–4) a backup passphrase may have: 3, "safely unguessable:
/// moderate protection from offline slow-hash scenario" — the archive is exactly that.
pub const MIN_PASSPHRASE_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

const MANIFEST: &str = "manifest.json";

/// The passphrase an archive is encrypted to. Its `Debug` hides it.
#[derive(Clone)]
pub struct Passphrase {
    secret: SecretString,
    /// scrypt's work factor (log2 N) for a new archive; `None`: age's own, tuned to about a
    /// second on this machine.
    work_factor: Option<u8>,
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// A passphrase for a new archive: `text` typed twice (`again`), at least
    /// [`MIN_PASSPHRASE_CHARS`] characters and of zxcvbn score [`MIN_PASSPHRASE_SCORE`] or
    /// more, judged with the organization's and the requester's words (`context`) counted as
    /// guessable. Errors name the field: `passphrase` or `passphrase_again`.
    pub fn new_for_archive(text: &str, again: &str, context: &[&str]) -> Result<Self, FieldError> {
        if text.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(FieldError::new(
                "passphrase",
                format!("Use at least {MIN_PASSPHRASE_CHARS} characters."),
            ));
        }
        let estimate = zxcvbn::zxcvbn(text, context);
        if estimate.score() < MIN_PASSPHRASE_SCORE {
            let hint = estimate
                .feedback()
                .and_then(|feedback| feedback.warning().map(|w| format!("{w} ")))
                .unwrap_or_default();
            return Err(FieldError::new(
                "passphrase",
                format!(
                    "Choose a passphrase that is harder to guess. {hint}Four or more unrelated \
                     words work well."
                ),
            ));
        }
        if text != again {
            return Err(FieldError::new(
                "passphrase_again",
                "The two passphrases differ.",
            ));
        }
        Ok(Self {
            secret: SecretString::from(text.to_owned()),
            work_factor: None,
        })
    }

    /// This passphrase with scrypt's work factor `log_n` (1..64) instead of age's: for tests,
    /// so that a suite does not spend a second on each archive.
    #[cfg(feature = "testing")]
    pub fn with_work_factor(self, log_n: u8) -> Self {
        Self {
            work_factor: Some(log_n.clamp(1, 63)),
            ..self
        }
    }

    /// A passphrase to open an archive with (no rules: it is whatever the archive was made
    /// with).
    pub fn to_open(text: &str) -> Self {
        Self {
            secret: SecretString::from(text.to_owned()),
            work_factor: None,
        }
    }
}

/// What an archive says of itself: `manifest.json`, the first file of the tar stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The last database migration applied where it was taken, e.g.
    /// `m20261130_000019_create_webhook`.
    pub schema: String,
    /// When its snapshot was read, to the microsecond.
    pub created_at: DateTime<Utc>,
    pub organization: ManifestOrganization,
    /// Every data file, in the order of the tar stream.
    pub files: Vec<ManifestFile>,
    /// The audit chain's head at the snapshot, signed with the installation's checkpoint key
    /// (the chain was verified first).
    pub audit_head: SignedCheckpoint,
    /// Which pepper the code digests were made with: [`lookup_secret::pepper_id`].
    pub code_pepper: String,
}

/// The organization a [`Manifest`] is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOrganization {
    pub id: i32,
    pub slug: String,
    pub name: String,
}

/// One data file of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path in the tar stream, e.g. `tables/audit_event/000001.ndjson`.
    pub path: String,
    /// The table its rows are of ([`Table::name`]).
    pub table: String,
    pub rows: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
}

impl Manifest {
    /// Rows in the whole archive.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|file| file.rows).sum()
    }
}

/// How far a backup is: rows written of the rows there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub written: u64,
    pub total: u64,
}

/// Why a backup or a restore did not happen. Nothing was written in either case.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No organization has that id or slug.
    #[error("no organization {0}")]
    UnknownOrganization(String),
    /// The organization's audit chain does not verify, so its head cannot be signed.
    #[error("the audit log does not verify, so no backup was taken: {0}")]
    BrokenChain(String),
    /// The passphrase does not open the archive, or it is not an age file encrypted to a
    /// passphrase.
    #[error("the passphrase does not open this archive (or it is not a Lifeline backup)")]
    WrongPassphrase,
    /// The archive was changed or cut short after it was made: it does not decrypt to the
    /// end, or a file differs from its manifest.
    #[error("the archive is damaged or was changed ({0}); nothing was restored")]
    Damaged(String),
    /// It is not an archive of a format this build reads.
    #[error("not a Lifeline backup this version reads: {0}")]
    Format(String),
    /// It was taken at another database schema.
    #[error(
        "the archive was taken at database schema {archive}, and this database is at \
         {database}; restore it with the Lifeline version of that schema"
    )]
    Schema { archive: String, database: String },
    /// A restore into a database that already holds an organization.
    #[error(
        "the database already holds {0} organization(s); restore into an empty database (run \
         the migrations only), or as a new organization beside them"
    )]
    NotEmpty(u64),
    /// A restore as a new organization under a slug an organization here has.
    #[error(
        "an organization with the slug {0:?} already exists here, so nothing was restored; \
         choose another slug for it"
    )]
    SlugTaken(String),
    /// A slug for a restore as a new organization that is not in the form organizations'
    /// slugs have ([`crate::accounts::slug_from_name`]).
    #[error(
        "{0:?} is not a slug: use lowercase letters, digits and single dashes (at most 64 \
         characters)"
    )]
    InvalidSlug(String),
    /// A restore as a new organization whose accounts have email addresses that accounts
    /// here have (addresses are unique across an installation), named in order.
    #[error(
        "accounts with these email addresses already exist here: {}; nothing was restored",
        .0.join(", ")
    )]
    EmailsTaken(Vec<String>),
    /// The archive's audit chain does not verify after restoring under the same key.
    #[error("the archive's audit log does not verify: {0}; nothing was restored")]
    RestoredChain(String),
    /// No key is installed, or it cannot seal.
    #[error("the server's secret key: {0}")]
    Key(String),
    #[error("writing the archive: {0}")]
    Io(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The last migration applied to `db` (SeaORM's `seaql_migrations`).
async fn schema(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version DESC LIMIT 1",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("the database has no migrations applied".into()))?;
    row.try_get("", "version")
}

/// Begins the one read transaction a backup takes its snapshot in.
async fn snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => db.begin().await,
    }
}

/// Who asks for a backup of which organization.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub org_id: i32,
    /// The member who asked; `None` for the operator's command line or a schedule.
    pub by: Option<&'a Member>,
    pub source: &'a Source,
}

/// Writes a backup of organization `request.org_id` to `out`: an age archive encrypted to
/// `passphrase` (module docs), read in one snapshot; then records `backup.created`.
/// `progress` hears of every part written (rows so far of the total). Returns the
/// archive's manifest.
///
/// Errors: no such organization, its audit chain does not verify, no key installed, writing
/// to `out`, or the database's. `out` may then hold part of an archive, which does not
/// decrypt; the caller deletes it.
pub async fn create(
    db: &DatabaseConnection,
    key: &SecretKey,
    request: Request<'_>,
    passphrase: &Passphrase,
    out: impl Write,
    mut progress: impl FnMut(Progress),
) -> Result<Manifest, BackupError> {
    let org_id = request.org_id;
    let txn = snapshot(db).await?;
    let created_at = Utc::now().trunc_subsecs(6);
    let org = organization::Entity::find_by_id(org_id)
        .one(&txn)
        .await?
        .ok_or_else(|| BackupError::UnknownOrganization(org_id.to_string()))?;
    let audit_head = audit::checkpoint::sign_unstored(&txn, org_id, created_at)
        .await
        .map_err(|e| match e {
            audit::checkpoint::CheckpointError::Db(e) => BackupError::Db(e),
            other => BackupError::BrokenChain(other.to_string()),
        })?;
    let schema = schema(&txn).await?;
    let mut total = 0;
    for table in Table::ALL {
        total += table.count(&txn, org_id).await?;
    }

    // scrypt takes about a second of one core (by design): off the async runtime.
    let (secret, work_factor) = (passphrase.secret.clone(), passphrase.work_factor);
    let encryptor = tokio::task::spawn_blocking(move || {
        let mut recipient = age::scrypt::Recipient::new(secret);
        if let Some(log_n) = work_factor {
            recipient.set_work_factor(log_n);
        }
        age::Encryptor::with_recipients(std::iter::once(&recipient as _))
    })
    .await
    .map_err(|e| BackupError::Io(e.to_string()))?
    .map_err(|e| BackupError::Io(e.to_string()))?;
    let encrypted = encryptor.wrap_output(out).map_err(io)?;
    let mut archive = tar::Builder::new(encrypted);

    // The manifest goes first, so that a restore can refuse an archive before writing a
    // row; it needs every file's digest, so the data is read twice in the same snapshot:
    // once to digest it, once to write it (holding one part at a time, not the archive).
    let mut files = Vec::new();
    for table in Table::ALL {
        let mut after = None;
        let mut part = 0;
        loop {
            let (rows, end) = table.read_part(&txn, org_id, after).await?;
            if rows.is_empty() && part > 0 {
                break;
            }
            part += 1;
            let bytes = ndjson(table, rows.clone(), key, org_id)?;
            files.push(ManifestFile {
                path: format!("tables/{}/{part:06}.ndjson", table.name()),
                table: table.name().to_owned(),
                rows: rows.len() as u64,
                sha256: hex::encode(Sha256::digest(&bytes)),
            });
            if rows.is_empty() {
                break;
            }
            after = Some(end);
        }
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        schema,
        created_at,
        organization: ManifestOrganization {
            id: org.id,
            slug: org.slug.clone(),
            name: org.name.clone(),
        },
        files,
        audit_head,
        code_pepper: lookup_secret::pepper_id(key),
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io(e.to_string()))?;
    append(&mut archive, MANIFEST, &manifest_bytes)?;

    let mut written = 0;
    progress(Progress { written, total });
    let mut expected = manifest.files.iter();
    for table in Table::ALL {
        let mut after = None;
        let mut part = 0;
        loop {
            let (rows, end) = table.read_part(&txn, org_id, after).await?;
            if rows.is_empty() && part > 0 {
                break;
            }
            part += 1;
            let count = rows.len() as u64;
            let bytes = ndjson(table, rows, key, org_id)?;
            let file = expected.next().ok_or_else(|| {
                BackupError::Io("the snapshot changed between its two readings".into())
            })?;
            if file.sha256 != hex::encode(Sha256::digest(&bytes)) {
                return Err(BackupError::Io(
                    "the snapshot changed between its two readings".into(),
                ));
            }
            append(&mut archive, &file.path, &bytes)?;
            written += count;
            progress(Progress { written, total });
            if count == 0 {
                break;
            }
            after = Some(end);
        }
    }
    txn.commit().await?;
    let encrypted = archive.into_inner().map_err(io)?;
    encrypted.finish().map_err(io)?.flush().map_err(io)?;
    audit::record(
        db,
        org_id,
        Event {
            action: AuditAction::BackupCreated,
            actor: request.by,
            // The member who asked hears that it is ready (a notice in the app and by mail).
            target: request.by,
            outcome: Outcome::Success,
            details: serde_json::json!({
                "snapshot_at": manifest.created_at,
                "rows": manifest.rows(),
                "audit_head_seq": manifest.audit_head.seq,
            }),
        },
        request.source,
        Utc::now(),
    )
    .await?;
    Ok(manifest)
}

fn io(error: std::io::Error) -> BackupError {
    BackupError::Io(error.to_string())
}

fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), BackupError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    archive.append_data(&mut header, path, bytes).map_err(io)
}

/// The NDJSON of one part: each row on its line, in its archive form ([`archive_form`]).
fn ndjson(
    table: Table,
    rows: Vec<serde_json::Value>,
    key: &SecretKey,
    org_id: i32,
) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::new();
    for row in rows {
        let row = archive_form(table, row, key, org_id)?;
        serde_json::to_writer(&mut out, &row).map_err(|e| BackupError::Io(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// A row as an archive holds it: as stored, but the sealed secrets opened (module docs).
fn archive_form(
    table: Table,
    mut row: serde_json::Value,
    key: &SecretKey,
    org_id: i32,
) -> Result<serde_json::Value, BackupError> {
    match table {
        Table::UserAccount => {
            let context = crate::mfa::seal_context(row_id(&row));
            open_secret(&mut row, "totp_secret", "totp_key_version", key, &context)?;
            // A new authenticator half set up is not kept: the member starts it again.
            row["totp_replacement_secret"] = serde_json::Value::Null;
            row["totp_replacement_key_version"] = serde_json::Value::Null;
        }
        Table::Webhook => {
            let context = crate::notifications::webhooks::seal_context(org_id);
            open_secret(&mut row, "secret", "key_version", key, &context)?;
        }
        _ => {}
    }
    Ok(row)
}

/// Every row organization `org_id` owns, table by table in [`Table::ALL`]'s order, in the
/// form an archive holds them (the sealed secrets opened with `key`), read in one snapshot:
/// what a backup of it now would hold. Errors: a secret `key` does not open, or the
/// database's.
pub async fn rows(
    db: &DatabaseConnection,
    key: &SecretKey,
    org_id: i32,
) -> Result<Vec<(Table, Vec<serde_json::Value>)>, BackupError> {
    let txn = snapshot(db).await?;
    let mut all = Vec::new();
    for table in Table::ALL {
        let mut rows = Vec::new();
        let mut after = None;
        loop {
            let (part, end) = table.read_part(&txn, org_id, after).await?;
            if part.is_empty() {
                break;
            }
            for row in part {
                rows.push(archive_form(table, row, key, org_id)?);
            }
            after = Some(end);
        }
        all.push((table, rows));
    }
    txn.commit().await?;
    Ok(all)
}

fn row_id(row: &serde_json::Value) -> i32 {
    row.get("id")
        .and_then(serde_json::Value::as_i64)
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or_default()
}

fn bytes_of(value: &serde_json::Value) -> Option<Vec<u8>> {
    value
        .as_array()?
        .iter()
        .map(|byte| byte.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect()
}

/// Replaces the sealed bytes in `row[field]` (if any) with the secret they seal, and
/// `row[version_field]` with 0.
fn open_secret(
    row: &mut serde_json::Value,
    field: &str,
    version_field: &str,
    key: &SecretKey,
    context: &[u8],
) -> Result<(), BackupError> {
    let Some(sealed) = row.get(field).and_then(bytes_of) else {
        return Ok(());
    };
    let version = row
        .get(version_field)
        .and_then(serde_json::Value::as_i64)
        .and_then(|v| KeyVersion::try_from(v).ok())
        .unwrap_or_default();
    let secret = key
        .open(version, &sealed, context)
        .map_err(|e| BackupError::Key(e.to_string()))?;
    row[field] = serde_json::json!(secret);
    row[version_field] = serde_json::json!(0);
    Ok(())
}

/// Seals `row[field]` (the secret's bytes, as an archive holds it) under `key`'s newest
/// version, setting `row[version_field]`.
fn seal_secret(
    row: &mut serde_json::Value,
    field: &str,
    version_field: &str,
    key: &SecretKey,
    context: &[u8],
) -> Result<(), BackupError> {
    let Some(secret) = row.get(field).and_then(bytes_of) else {
        return Ok(());
    };
    let sealed = key
        .seal(&secret, context)
        .map_err(|e| BackupError::Key(e.to_string()))?;
    row[field] = serde_json::json!(sealed.bytes);
    row[version_field] = serde_json::json!(sealed.version);
    Ok(())
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub manifest: Manifest,
    /// The organization as restored: the archive's (`manifest.organization`), or, restored
    /// as a new organization, under its new id and slug.
    pub organization: ManifestOrganization,
    /// The audit chain was linked anew under this installation's key: the archive came from
    /// an installation with another key, or it was restored as a new organization (its ids
    /// changed). The `backup.restored` event names the archive's signed head.
    pub chain_relinked: bool,
    /// Members whose backup codes and issued codes were ended because this installation's
    /// pepper differs from the archive's (module docs).
    pub codes_ended: usize,
}

/// Where a restore writes the archive's organization.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    /// A database holding no organization; ids are kept.
    EmptyDatabase,
    /// Beside the organizations the database holds, under new ids and this slug (`None`:
    /// the archive's).
    NewOrganization { slug: Option<String> },
}

impl Destination {
    fn mode(&self) -> &'static str {
        match self {
            Self::EmptyDatabase => "empty_database",
            Self::NewOrganization { .. } => "new_organization",
        }
    }
}

/// Restores the archive `input`, opened with `passphrase`, into `db`, which must be
/// migrated to the archive's schema and hold no organization. Ids are kept. Everything is
/// written in one transaction, after which the `backup.restored` event is recorded by
/// `source` at `now`. `input` is decrypted and read on a thread of its own (scrypt and the
/// reads block), a few files ahead of the writes; the future may be spawned.
///
/// Errors (nothing written): wrong passphrase, a damaged or changed archive, another format
/// or schema, a database that is not empty ([`BackupError::NotEmpty`]: see
/// [`restore_as_new_organization`]), a chain that does not verify under this key when the
/// archive is this installation's, no key installed, or the database's.
pub async fn restore(
    db: &DatabaseConnection,
    key: &SecretKey,
    input: impl Read + Send + 'static,
    passphrase: &Passphrase,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Restored, BackupError> {
    restore_into(
        db,
        key,
        input,
        passphrase,
        Destination::EmptyDatabase,
        source,
        now,
    )
    .await
}

/// Restores the archive `input`, opened with `passphrase`, into `db` (migrated to the
/// archive's schema) as a new organization beside the ones it holds — the installation the
/// archive came from included. Every row gets a new id and every reference follows it; a
/// reference to a member the archive does not hold is emptied where the column allows it
/// (`backup/renumber.rs` has the rules). The organization is written under `slug` (`None`:
/// the archive's); the secrets are sealed under `key` for their new ids; the audit chain is
/// checked against the archive's signed head and linked anew, its old checkpoints dropped.
/// Backup codes keep working when the pepper is this installation's, and are ended otherwise
/// ([`restore`]). Everything is written in one transaction, ending with the
/// `backup.restored` event (the mode, and the organization's archive id and new id),
/// recorded by `source` at `now`.
///
/// Two restores under the same slug at once: one writes, the other is refused with
/// [`BackupError::SlugTaken`] (both take the rules' revision first, which serialises them;
/// the slug's unique index stands behind that).
///
/// Errors (nothing written): as [`restore`] (but for an empty database), and
/// [`BackupError::InvalidSlug`], [`BackupError::SlugTaken`] (the slug, given or the
/// archive's, is an organization's here) or [`BackupError::EmailsTaken`] (accounts here have
/// email addresses of the archive's accounts; addresses are unique across the installation).
pub async fn restore_as_new_organization(
    db: &DatabaseConnection,
    key: &SecretKey,
    input: impl Read + Send + 'static,
    passphrase: &Passphrase,
    slug: Option<&str>,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Restored, BackupError> {
    // A slug given is checked before the archive is opened (scrypt takes a second).
    let slug = slug.map(renumber::check_slug).transpose()?;
    restore_into(
        db,
        key,
        input,
        passphrase,
        Destination::NewOrganization { slug },
        source,
        now,
    )
    .await
}

/// Both restores: the archive is read and checked file by file as it is written, all in one
/// transaction, so a damaged file anywhere rolls everything back.
async fn restore_into(
    db: &DatabaseConnection,
    key: &SecretKey,
    input: impl Read + Send + 'static,
    passphrase: &Passphrase,
    destination: Destination,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Restored, BackupError> {
    let mut files = ArchiveFiles::open(input, passphrase)?;
    let manifest: Manifest = {
        let mut first = files
            .next()
            .await?
            .ok_or_else(|| BackupError::Damaged("it holds no manifest".into()))?;
        if first.0 != MANIFEST {
            return Err(BackupError::Format(format!(
                "its first file is {}",
                first.0
            )));
        }
        serde_json::from_slice(&std::mem::take(&mut first.1))
            .map_err(|e| BackupError::Format(format!("manifest.json: {e}")))?
    };
    if manifest.format != FORMAT {
        return Err(BackupError::Format(format!(
            "format {:?}, expected {FORMAT:?}",
            manifest.format
        )));
    }
    let database_schema = schema(db).await?;
    if manifest.schema != database_schema {
        return Err(BackupError::Schema {
            archive: manifest.schema.clone(),
            database: database_schema,
        });
    }
    let archive_org = manifest.organization.id;

    // The chain's head first: the archive's own organization's, signed by this installation
    // (its chain is then checked under the key), or by another (checked as far as can be
    // without its key, and linked anew).
    let head = &manifest.audit_head;
    if head.org_id != archive_org {
        return Err(BackupError::Damaged(
            "its audit head is of another organization".into(),
        ));
    }
    let head_is_ours = head.check(key).is_ok();
    if !head_is_ours {
        head.check_signature()
            .map_err(|e| BackupError::RestoredChain(e.to_string()))?;
    }
    let mut renumbering = match &destination {
        Destination::EmptyDatabase => None,
        Destination::NewOrganization { slug } => {
            let slug = slug
                .clone()
                .unwrap_or_else(|| manifest.organization.slug.clone());
            let links = if head_is_ours {
                Some(audit::chain::ArchivedLinks::new()?)
            } else {
                None
            };
            Some(renumber::Renumbering::new(archive_org, slug, links))
        }
    };

    let txn = db.begin().await?;
    // Taking the write lock first (SQLite) and checking emptiness inside the transaction.
    crate::authz::rules::bump_revision(&txn).await?;
    if renumbering.is_none() {
        use sea_orm::PaginatorTrait;
        let organizations = organization::Entity::find().count(&txn).await?;
        if organizations > 0 {
            return Err(BackupError::NotEmpty(organizations));
        }
    }
    for file in &manifest.files {
        let (path, bytes) = files
            .next()
            .await?
            .ok_or_else(|| BackupError::Damaged(format!("{} is missing", file.path)))?;
        if path != file.path {
            return Err(BackupError::Damaged(format!(
                "{path} where the manifest has {}",
                file.path
            )));
        }
        if hex::encode(Sha256::digest(&bytes)) != file.sha256 {
            return Err(BackupError::Damaged(format!(
                "{path} differs from its digest"
            )));
        }
        let table = Table::named(&file.table)
            .ok_or_else(|| BackupError::Format(format!("unknown table {}", file.table)))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| BackupError::Damaged(format!("{path} is not UTF-8")))?;
        let mut rows = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let row: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| BackupError::Damaged(format!("{path}, line {}: {e}", index + 1)))?;
            rows.push((index + 1, row));
        }
        if rows.len() as u64 != file.rows {
            return Err(BackupError::Damaged(format!(
                "{path} holds {} rows, and the manifest says {}",
                rows.len(),
                file.rows
            )));
        }
        let mut org_id = archive_org;
        if let Some(renumbering) = &mut renumbering {
            renumbering.before(table)?;
            let part = renumbering.part(&txn, table, &path, &mut rows).await?;
            if part == renumber::Part::Skip {
                continue;
            }
            org_id = renumbering.org_id().unwrap_or(archive_org);
        }
        // Sealed for the ids they are written under.
        for (_, row) in &mut rows {
            match table {
                Table::UserAccount => {
                    let context = crate::mfa::seal_context(row_id(row));
                    seal_secret(row, "totp_secret", "totp_key_version", key, &context)?;
                }
                Table::Webhook => {
                    let context = crate::notifications::webhooks::seal_context(org_id);
                    seal_secret(row, "secret", "key_version", key, &context)?;
                }
                _ => {}
            }
        }
        table.insert(&txn, rows).await.map_err(|e| match e {
            tables::InsertError::Shape { line, problem } => {
                BackupError::Damaged(format!("{path}, line {line}: {problem}"))
            }
            tables::InsertError::Db(e) => write_error(e, renumbering.as_ref()),
        })?;
    }
    if files.next().await?.is_some() {
        return Err(BackupError::Damaged(
            "it holds files its manifest does not list".into(),
        ));
    }

    // The chain: as it was, when this installation's key signed the archive's head (and it
    // verifies to that head) and the ids are kept; else checked as far as can be (its links
    // were checked as they were read, when the head is ours), and linked anew.
    let (org_id, chain_relinked) = match &renumbering {
        None => {
            for table in Table::ALL {
                tables::move_sequence_past_ids(&txn, table).await?;
            }
            if head_is_ours {
                let state = audit::checkpoint::verify_against(&txn, archive_org, head)
                    .await
                    .map_err(|e| BackupError::RestoredChain(e.to_string()))?;
                if let Some(broken) = state.broken {
                    return Err(BackupError::RestoredChain(broken.to_string()));
                }
            } else {
                // Checkpoints signed by the other installation's key prove nothing here.
                crate::entity::audit_checkpoint::Entity::delete_many()
                    .filter(crate::entity::audit_checkpoint::Column::OrgId.eq(archive_org))
                    .exec(&txn)
                    .await?;
            }
            (archive_org, !head_is_ours)
        }
        // Its old checkpoints were not written: they sign the old ids.
        Some(renumbering) => (renumbering.finish()?, true),
    };
    if chain_relinked
        && let Some(broken) =
            audit::chain::relink_restored(&txn, org_id, (head.seq, &head.hash)).await?
    {
        return Err(BackupError::RestoredChain(broken.to_string()));
    }

    // The chart's daily counts are the events', counted again (a restore writes events
    // without recording them one by one).
    audit::daily::recount(&txn, org_id).await?;

    // The code digests need the pepper they were made with.
    let codes_ended = if manifest.code_pepper == lookup_secret::pepper_id(key) {
        0
    } else {
        end_codes(&txn, org_id, source, now).await?
    };

    let organization = ManifestOrganization {
        id: org_id,
        slug: renumbering
            .as_ref()
            .map_or(manifest.organization.slug.as_str(), |renumbering| {
                renumbering.slug()
            })
            .to_owned(),
        name: manifest.organization.name.clone(),
    };
    audit::record(
        &txn,
        org_id,
        Event {
            action: AuditAction::BackupRestored,
            actor: None,
            target: None,
            outcome: Outcome::Success,
            details: serde_json::json!({
                "mode": destination.mode(),
                "organization": {
                    "archive_id": archive_org,
                    "id": org_id,
                    "archive_slug": manifest.organization.slug,
                    "slug": organization.slug,
                },
                "archive_created_at": manifest.created_at,
                "archive_head": {
                    "seq": manifest.audit_head.seq,
                    "hash": manifest.audit_head.hash,
                    "key_version": manifest.audit_head.key_version,
                    "public_key": manifest.audit_head.public_key,
                    "signature": manifest.audit_head.signature,
                },
                "rows": manifest.rows(),
                "chain_relinked": chain_relinked,
                "codes_ended": codes_ended,
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Restored {
        manifest,
        organization,
        chain_relinked,
        codes_ended,
    })
}

/// A database error while writing rows, as a restore reports it: the slug's unique index
/// refusing a new organization is [`BackupError::SlugTaken`] (a restore under the same slug
/// committed first).
fn write_error(error: DbErr, renumbering: Option<&renumber::Renumbering>) -> BackupError {
    match (error.sql_err(), renumbering) {
        (Some(sea_orm::SqlErr::UniqueConstraintViolation(detail)), Some(renumbering))
            if detail.contains("slug") =>
        {
            BackupError::SlugTaken(renumbering.slug().to_owned())
        }
        _ => BackupError::Db(error),
    }
}

/// Ends every member's backup codes and issued codes (their digests need a pepper this
/// installation does not hold); returns for how many members something ended.
async fn end_codes(
    txn: &DatabaseTransaction,
    org_id: i32,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let members = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .all(txn)
        .await?;
    let mut ended = 0;
    for row in members {
        let Some(member) = crate::identity::member(txn, row.id).await? else {
            continue;
        };
        let stand_ins = crate::recovery_codes::stand_ins::end_stand_ins(
            txn,
            None,
            &member,
            crate::recovery_codes::stand_ins::EndReason::RestoredElsewhere,
            source,
            now,
        )
        .await?;
        if stand_ins.backup_codes || stand_ins.recovery_code {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Files of an archive read ahead of the restore writing them: a few parts in memory, never
/// the archive.
const FILES_AHEAD: usize = 2;

/// The files of an archive, in the order of its tar stream, decrypted and read on a thread
/// of their own: age's scrypt takes about a second and the reads block, and neither belongs
/// on the async runtime (the tar reader, which cannot move between threads, stays there too,
/// so a restore is a future a server may spawn).
struct ArchiveFiles {
    files: tokio::sync::mpsc::Receiver<Result<(String, Vec<u8>), BackupError>>,
}

impl ArchiveFiles {
    /// Starts reading `input`, opened with `passphrase`. Errors: no thread to read on.
    fn open(
        input: impl Read + Send + 'static,
        passphrase: &Passphrase,
    ) -> Result<Self, BackupError> {
        let (sender, files) = tokio::sync::mpsc::channel(FILES_AHEAD);
        let secret = passphrase.secret.clone();
        std::thread::Builder::new()
            .name("backup-restore".into())
            .spawn(move || {
                if let Err(error) = read_files(input, secret, &sender) {
                    // Nobody to tell when the restore has stopped already.
                    let _ = sender.blocking_send(Err(error));
                }
            })
            .map_err(io)?;
        Ok(Self { files })
    }

    /// The next file: its path and bytes; `None` at the end of the stream. Errors: the
    /// passphrase does not open it, or it is not an archive, or a damaged one.
    async fn next(&mut self) -> Result<Option<(String, Vec<u8>)>, BackupError> {
        self.files.recv().await.transpose()
    }
}

/// Decrypts `input` with `secret` and sends each file of its tar stream to `files`, until
/// the end or until the restore stops listening.
fn read_files(
    input: impl Read,
    secret: SecretString,
    files: &tokio::sync::mpsc::Sender<Result<(String, Vec<u8>), BackupError>>,
) -> Result<(), BackupError> {
    // Without a readable age header, it is not an archive (or not one any more).
    let decryptor = age::Decryptor::new(input).map_err(|e| match e {
        age::DecryptError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            BackupError::Format("the file is empty or too short to be an archive".into())
        }
        other => BackupError::Format(format!("not an encrypted archive ({other})")),
    })?;
    if !decryptor.is_scrypt() {
        return Err(BackupError::WrongPassphrase);
    }
    let identity = age::scrypt::Identity::new(secret);
    let plain = decryptor
        .decrypt(std::iter::once(&identity as _))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::NoMatchingKeys => BackupError::WrongPassphrase,
            other => BackupError::Damaged(other.to_string()),
        })?;
    let mut archive = tar::Archive::new(plain);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let path = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(damaged)?;
        if files.blocking_send(Ok((path, bytes))).is_err() {
            // The restore stopped (it refused the archive, or failed): nothing more to read.
            return Ok(());
        }
    }
    Ok(())
}

/// An error while reading the decrypted stream: age reports a changed or cut archive here.
fn damaged(error: std::io::Error) -> BackupError {
    BackupError::Damaged(error.to_string())
}

/// The organization with `slug`, for the command line. Errors: none has it.
pub async fn organization_id(db: &DatabaseConnection, slug: &str) -> Result<i32, BackupError> {
    organization::Entity::find()
        .filter(organization::Column::Slug.eq(slug))
        .one(db)
        .await?
        .map(|org| org.id)
        .ok_or_else(|| BackupError::UnknownOrganization(slug.to_owned()))
}
