//! Backups requested in the console (issue 15): a request under the gate and a daily limit,
//! the archive built in the background with its progress on the record for every instance
//! to show, a download kept for [`KEPT_FOR`], then deleted. Requested, created (ready),
//! failed, downloaded, expired and deleted are each an audit event.
//!
//! The archive is a file in the server's backup folder (with several instances, a folder
//! they share), encrypted to the requester's passphrase, which is held in memory only while
//! the archive is written: neither the database nor the folder ever holds it. A server that
//! stops while building leaves a job whose progress no longer moves; [`sweep`] marks it
//! failed after [`STALE_AFTER`], and its partial file is removed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Passphrase, Progress, Request};
use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::{Action, Authz, AuthzError, PolicyError},
    command::{Attempt, Command},
    entity::{backup_job, organization},
    identity::{self, Member},
    secrets::SecretKey,
};

/// How long an archive may be downloaded after it is ready; then it is deleted.
pub const KEPT_FOR: Duration = Duration::days(7);

/// A build whose progress has not moved for this long was cut off (its server stopped).
pub const STALE_AFTER: Duration = Duration::minutes(10);

/// The default of how many backups an organization may request per 24 hours
/// (`LIFELINE_BACKUPS_PER_DAY`).
pub const DEFAULT_PER_DAY: u32 = 3;

/// How many requests the backup page lists.
pub const LISTED: u64 = 20;

/// Where a backup job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Building,
    Ready,
    Failed,
    Expired,
    Deleted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Deleted => "deleted",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            "deleted" => Self::Deleted,
            _ => Self::Building,
        }
    }
}

/// One requested backup, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i32,
    pub org_id: i32,
    pub requested_by_id: Option<i32>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub state: JobState,
    /// Rows written to the archive so far, of `rows_total` (0 until counted).
    pub rows_written: i64,
    pub rows_total: i64,
    /// The archive's size in bytes, once ready.
    pub bytes: Option<i64>,
    /// Hex SHA-256 of the archive file, once ready.
    pub sha256: Option<String>,
    /// Why it failed, in words.
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a ready archive is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    pub downloads: i32,
}

impl From<backup_job::Model> for Job {
    fn from(row: backup_job::Model) -> Self {
        Self {
            id: row.id,
            org_id: row.org_id,
            requested_by_id: row.requested_by_id,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            state: JobState::parse(&row.state),
            rows_written: row.rows_written,
            rows_total: row.rows_total,
            bytes: row.bytes,
            sha256: row.sha256,
            error: row.error,
            finished_at: row.finished_at,
            expires_at: row.expires_at,
            downloads: row.downloads,
        }
    }
}

/// Why a backup request, download or deletion did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupJobError {
    #[error("You are not allowed to do that.")]
    NotAllowed,
    /// The passphrase (named field) is not acceptable.
    #[error(transparent)]
    Invalid(#[from] crate::input::FieldError),
    #[error(
        "Your organization has requested {per_day} backups in the last 24 hours, the most it \
         may. You can request another after {next}."
    )]
    DailyLimit { per_day: u32, next: String },
    #[error("That backup does not exist.")]
    UnknownBackup,
    #[error(
        "That backup is not ready to download (it is being built, failed, expired or was deleted)."
    )]
    NotReady,
    /// Only the member who requested a backup downloads it (they hold its passphrase).
    #[error("Only the member who requested a backup can download it.")]
    NotYours,
    #[error("the backup folder: {0}")]
    Folder(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for BackupJobError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// What the backup page shows: may the viewer request one, how many the organization may
/// still request today, and its latest requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub per_day: u32,
    /// Requests in the last 24 hours (failed ones do not count).
    pub requested_today: u32,
    pub jobs: Vec<Job>,
}

/// The organization's latest [`LISTED`] backup requests, for `viewer`, who must be allowed to
/// request backups. Errors: not allowed (nothing shown), or the database's.
pub async fn overview(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    per_day: u32,
    now: DateTime<Utc>,
) -> Result<Overview, BackupJobError> {
    if !authz
        .allows(viewer, viewer.org_id, Action::RequestBackups)
        .await?
    {
        return Err(BackupJobError::NotAllowed);
    }
    let jobs = backup_job::Entity::find()
        .filter(backup_job::Column::OrgId.eq(viewer.org_id))
        .order_by_desc(backup_job::Column::RequestedAt)
        .order_by_desc(backup_job::Column::Id)
        .limit(LISTED)
        .all(db)
        .await?
        .into_iter()
        .map(Job::from)
        .collect();
    Ok(Overview {
        per_day,
        requested_today: requested_since(db, viewer.org_id, now - Duration::days(1)).await?,
        jobs,
    })
}

async fn requested_since(
    db: &impl ConnectionTrait,
    org_id: i32,
    since: DateTime<Utc>,
) -> Result<u32, DbErr> {
    let count = backup_job::Entity::find()
        .filter(backup_job::Column::OrgId.eq(org_id))
        .filter(backup_job::Column::RequestedAt.gt(since))
        .filter(backup_job::Column::State.ne(JobState::Failed.as_str()))
        .count(db)
        .await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// `Ok` when the gate lets the actor request backups ([`Action::RequestBackups`]); otherwise
/// the refused request is on the record and [`BackupJobError::NotAllowed`] returned. For
/// asking before the passphrase is judged.
pub async fn may_request(cmd: &Command<'_>) -> Result<(), BackupJobError> {
    cmd.require(
        Action::RequestBackups,
        Attempt::of(AuditAction::BackupRequested),
    )
    .await?;
    Ok(())
}

/// Requests a backup of the actor's organization: checks the gate
/// ([`Action::RequestBackups`]; a refusal is on the record) and the daily limit (`per_day`
/// per 24 hours, failed requests not counted; requests take turns on the organization's row,
/// so the limit holds however many arrive at once), then writes the job (building) with
/// `backup.requested` on the record. The caller then runs [`build`] with the passphrase.
///
/// Errors: not allowed; [`BackupJobError::DailyLimit`]; the database's.
pub async fn request(cmd: &Command<'_>, per_day: u32) -> Result<Job, BackupJobError> {
    may_request(cmd).await?;
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    // Requests take turns, so the day's count below cannot go stale.
    crate::db::take_turns_on_organization(&txn, org_id).await?;
    let since = cmd.now - Duration::days(1);
    if requested_since(&txn, org_id, since).await? >= per_day {
        let oldest = backup_job::Entity::find()
            .filter(backup_job::Column::OrgId.eq(org_id))
            .filter(backup_job::Column::RequestedAt.gt(since))
            .filter(backup_job::Column::State.ne(JobState::Failed.as_str()))
            .order_by_asc(backup_job::Column::RequestedAt)
            .one(&txn)
            .await?;
        let next = oldest.map_or(cmd.now, |job| job.requested_at + Duration::days(1));
        return Err(BackupJobError::DailyLimit {
            per_day,
            next: crate::notifications::rendering::readable_time(next),
        });
    }
    let row = backup_job::ActiveModel {
        org_id: Set(org_id),
        requested_by_id: Set(Some(cmd.actor.id)),
        requested_by: Set(cmd.actor.email.clone()),
        requested_at: Set(cmd.now),
        state: Set(JobState::Building.as_str().to_owned()),
        rows_written: Set(0),
        rows_total: Set(0),
        updated_at: Set(cmd.now),
        downloads: Set(0),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::BackupRequested,
            None,
            json!({ "backup": row.id }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(Job::from(row))
}

/// The archive file of job `id` of organization `org_id` in `folder`, while it is written
/// (`.partial`) and once complete.
fn file_names(org_id: i32, id: i32) -> (String, String) {
    let name = format!("lifeline-backup-org{org_id}-{id}.age");
    (format!("{name}.partial"), name)
}

/// Builds job `id`'s archive in `folder`, encrypted to `passphrase`, under `key`, writing its
/// progress to the job as it goes; then marks it ready (kept for [`KEPT_FOR`]) with
/// `backup.created` on the record, or failed with `backup.failed` (its partial file
/// removed). Meant to run in the background right after [`request`]. Errors only when even
/// the failure could not be written (the database's).
pub async fn build(
    db: &DatabaseConnection,
    key: &SecretKey,
    id: i32,
    passphrase: &Passphrase,
    folder: &Path,
) -> Result<JobState, DbErr> {
    let Some(job) = backup_job::Entity::find_by_id(id).one(db).await? else {
        return Err(DbErr::RecordNotFound(format!("backup job {id}")));
    };
    let requester = match job.requested_by_id {
        Some(member) => identity::member(db, member).await?,
        None => None,
    };
    let (partial, name) = file_names(job.org_id, id);
    let outcome = write_archive(
        db,
        key,
        &job,
        requester.as_ref(),
        passphrase,
        folder,
        &partial,
    )
    .await;
    let now = Utc::now();
    match outcome {
        Ok((bytes, sha256)) => {
            if let Err(error) = std::fs::rename(folder.join(&partial), folder.join(&name)) {
                let failure = Failure::folder(format!("renaming {partial} to {name}: {error}"));
                return fail(db, &job, requester.as_ref(), folder, &partial, &failure).await;
            }
            backup_job::Entity::update_many()
                .col_expr(
                    backup_job::Column::State,
                    Expr::value(JobState::Ready.as_str()),
                )
                .col_expr(backup_job::Column::File, Expr::value(name))
                .col_expr(backup_job::Column::Bytes, Expr::value(bytes))
                .col_expr(backup_job::Column::Sha256, Expr::value(sha256))
                .col_expr(backup_job::Column::FinishedAt, Expr::value(now))
                .col_expr(backup_job::Column::UpdatedAt, Expr::value(now))
                .col_expr(backup_job::Column::ExpiresAt, Expr::value(now + KEPT_FOR))
                .filter(backup_job::Column::Id.eq(id))
                .exec(db)
                .await?;
            Ok(JobState::Ready)
        }
        Err(failure) => fail(db, &job, requester.as_ref(), folder, &partial, &failure).await,
    }
}

/// Runs [`build`] in the background on this process's runtime (the passphrase moves into
/// the task and is dropped with it), logging how it ended.
pub fn spawn_build(
    db: DatabaseConnection,
    key: SecretKey,
    id: i32,
    passphrase: Passphrase,
    folder: PathBuf,
) {
    tokio::spawn(async move {
        match build(&db, &key, id, &passphrase, &folder).await {
            Ok(outcome) => tracing::info!(backup = id, ?outcome, "backup built"),
            Err(error) => tracing::error!(%error, backup = id, "backup build"),
        }
    });
}

/// Writes the archive of `job` to `folder/partial`, its progress to the job's row as it goes.
/// Returns its size and SHA-256, or why not.
async fn write_archive(
    db: &DatabaseConnection,
    key: &SecretKey,
    job: &backup_job::Model,
    requester: Option<&Member>,
    passphrase: &Passphrase,
    folder: &Path,
    partial: &str,
) -> Result<(i64, String), Failure> {
    let file = create_private_file(folder, partial).map_err(Failure::folder)?;
    let (progress, mut heard) = tokio::sync::watch::channel(None::<Progress>);
    // The progress goes to the row from its own task, so writing the archive never waits for
    // it; only the latest counts.
    let progress_db = db.clone();
    let job_id = job.id;
    let beats = tokio::spawn(async move {
        while heard.changed().await.is_ok() {
            let Some(step) = *heard.borrow_and_update() else {
                continue;
            };
            let written = i64::try_from(step.written).unwrap_or(i64::MAX);
            let total = i64::try_from(step.total).unwrap_or(i64::MAX);
            let _ = backup_job::Entity::update_many()
                .col_expr(backup_job::Column::RowsWritten, Expr::value(written))
                .col_expr(backup_job::Column::RowsTotal, Expr::value(total))
                .col_expr(backup_job::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(backup_job::Column::Id.eq(job_id))
                .filter(backup_job::Column::State.eq(JobState::Building.as_str()))
                .exec(&progress_db)
                .await;
        }
    });
    let source = Source::default();
    let hashing = HashingWriter::new(std::io::BufWriter::new(file));
    let digest = hashing.digest.clone();
    let written = super::create(
        db,
        key,
        Request {
            org_id: job.org_id,
            by: requester,
            source: &source,
        },
        passphrase,
        hashing,
        |step| {
            let _ = progress.send(Some(step));
        },
    )
    .await;
    drop(progress);
    let _ = beats.await;
    written.map_err(|error| Failure {
        shown: match &error {
            super::BackupError::BrokenChain(_) => {
                "The audit log does not verify, so no backup was taken. Your operator can find \
                 where it breaks with `lifeline audit verify`."
            }
            _ => "The backup could not be written. Your operator can find why in the server's log.",
        },
        cause: error.to_string(),
    })?;
    let (bytes, sha256) = digest.finish();
    Ok((bytes, sha256))
}

/// Creates `folder` (mode 0700, when missing) and the new file `name` in it (mode 0600: the
/// archive is encrypted, and still nobody else's to read). Errors in words.
fn create_private_file(folder: &Path, name: &str) -> Result<std::fs::File, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .map_err(|e| format!("cannot create the backup folder {}: {e}", folder.display()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(folder.join(name))
        .map_err(|e| format!("cannot create {name} in the backup folder: {e}"))
}

/// Why a build failed: words for the organization (on the page and in the audit log), and
/// the cause for the operator (in the server's log only: it may name files and folders).
#[derive(Debug, Clone)]
struct Failure {
    shown: &'static str,
    cause: String,
}

impl Failure {
    fn folder(cause: String) -> Self {
        Self {
            shown: "The backup folder could not be written to. Your operator can find why in the \
                    server's log.",
            cause,
        }
    }
}

/// Marks `job` failed for `failure`, removes its partial file and records `backup.failed`.
async fn fail(
    db: &DatabaseConnection,
    job: &backup_job::Model,
    requester: Option<&Member>,
    folder: &Path,
    partial: &str,
    failure: &Failure,
) -> Result<JobState, DbErr> {
    tracing::warn!(
        backup = job.id,
        org_id = job.org_id,
        cause = %failure.cause,
        "backup failed"
    );
    let problem = failure.shown;
    let _ = std::fs::remove_file(folder.join(partial));
    let now = Utc::now();
    let txn = db.begin().await?;
    let failed = backup_job::Entity::update_many()
        .col_expr(
            backup_job::Column::State,
            Expr::value(JobState::Failed.as_str()),
        )
        .col_expr(
            backup_job::Column::Error,
            Expr::value(problem.chars().take(480).collect::<String>()),
        )
        .col_expr(backup_job::Column::FinishedAt, Expr::value(now))
        .col_expr(backup_job::Column::UpdatedAt, Expr::value(now))
        .filter(backup_job::Column::Id.eq(job.id))
        .filter(backup_job::Column::State.eq(JobState::Building.as_str()))
        .exec(&txn)
        .await?;
    if failed.rows_affected == 1 {
        audit::record(
            &txn,
            job.org_id,
            Event {
                action: AuditAction::BackupFailed,
                actor: None,
                target: requester,
                outcome: Outcome::Failure,
                details: json!({ "backup": job.id, "reason": problem }),
            },
            &Source::default(),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(JobState::Failed)
}

/// Backup `id` of the actor's organization, once the gate lets them act on backups (a refusal
/// of `action` is on the record). Errors: not allowed, unknown (another organization's
/// too), or the database's.
async fn gated_job(
    cmd: &Command<'_>,
    id: i32,
    action: AuditAction,
) -> Result<backup_job::Model, BackupJobError> {
    cmd.require(
        Action::RequestBackups,
        Attempt {
            details: json!({ "backup": id }),
            ..Attempt::of(action)
        },
    )
    .await?;
    backup_job::Entity::find_by_id(id)
        .filter(backup_job::Column::OrgId.eq(cmd.actor.org_id))
        .one(cmd.db)
        .await?
        .ok_or(BackupJobError::UnknownBackup)
}

/// An archive the requester may download: its file and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub path: PathBuf,
    /// The name to save it under.
    pub file_name: String,
    pub bytes: i64,
}

/// Lets the actor download backup `id` from `folder`: they must still be allowed to request
/// backups, and be the member who requested it (the passphrase is theirs); it must be ready
/// and not expired. Counts the download, with `backup.downloaded` on the record.
///
/// Errors: not allowed (on the record), unknown (another organization's too), not theirs,
/// not ready, or the database's.
pub async fn download(
    cmd: &Command<'_>,
    id: i32,
    folder: &Path,
) -> Result<Download, BackupJobError> {
    let job = gated_job(cmd, id, AuditAction::BackupDownloaded).await?;
    if job.requested_by_id != Some(cmd.actor.id) {
        return Err(BackupJobError::NotYours);
    }
    let ready = JobState::parse(&job.state) == JobState::Ready
        && job.expires_at.is_some_and(|at| at > cmd.now);
    let (Some(file), Some(bytes), true) = (job.file.clone(), job.bytes, ready) else {
        return Err(BackupJobError::NotReady);
    };
    let txn = cmd.db.begin().await?;
    backup_job::Entity::update_many()
        .col_expr(
            backup_job::Column::Downloads,
            Expr::col(backup_job::Column::Downloads).add(1),
        )
        .col_expr(backup_job::Column::LastDownloadedAt, Expr::value(cmd.now))
        .filter(backup_job::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::BackupDownloaded,
            None,
            json!({ "backup": id, "bytes": bytes }),
        ),
    )
    .await?;
    txn.commit().await?;
    let slug = organization::Entity::find_by_id(job.org_id)
        .one(cmd.db)
        .await?
        .map_or_else(|| "organization".to_owned(), |org| org.slug);
    Ok(Download {
        path: folder.join(file),
        file_name: format!(
            "lifeline-{slug}-{}.age",
            job.finished_at
                .unwrap_or(job.requested_at)
                .format("%Y-%m-%d-%H%M")
        ),
        bytes,
    })
}

/// Deletes backup `id`'s archive from `folder` before it expires (by the member who requested
/// it, or an owner), with `backup.deleted` on the record. A deletion that finds it already
/// gone is [`BackupJobError::NotReady`].
///
/// Errors: not allowed (on the record), unknown, not theirs (an admin deleting another's),
/// not ready, or the database's.
pub async fn delete(cmd: &Command<'_>, id: i32, folder: &Path) -> Result<(), BackupJobError> {
    let job = gated_job(cmd, id, AuditAction::BackupDeleted).await?;
    if job.requested_by_id != Some(cmd.actor.id) && cmd.actor.role != identity::Role::Owner {
        return Err(BackupJobError::NotYours);
    }
    let txn = cmd.db.begin().await?;
    let deleted = retire_ready(&txn, id, JobState::Deleted, cmd.now).await?;
    if !deleted {
        return Err(BackupJobError::NotReady);
    }
    cmd.record(
        &txn,
        cmd.event(AuditAction::BackupDeleted, None, json!({ "backup": id })),
    )
    .await?;
    txn.commit().await?;
    if let Some(file) = job.file {
        remove(&folder.join(file));
    }
    Ok(())
}

/// Takes ready backup `id` out of service as `state` (its archive's name forgotten; the caller
/// removes the file once committed), in `txn`; whether it was still ready (a deletion and an
/// expiry, or two sweeps, change it once).
async fn retire_ready(
    txn: &impl ConnectionTrait,
    id: i32,
    state: JobState,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let retired = backup_job::Entity::update_many()
        .col_expr(backup_job::Column::State, Expr::value(state.as_str()))
        .col_expr(
            backup_job::Column::File,
            Expr::value(Option::<String>::None),
        )
        .col_expr(backup_job::Column::UpdatedAt, Expr::value(now))
        .filter(backup_job::Column::Id.eq(id))
        .filter(backup_job::Column::State.eq(JobState::Ready.as_str()))
        .exec(txn)
        .await?;
    Ok(retired.rows_affected == 1)
}

fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "removing a backup archive");
    }
}

/// What one [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Ready archives past their time, deleted (`backup.expired`).
    pub expired: usize,
    /// Builds cut off (no progress for [`STALE_AFTER`]), marked failed (`backup.failed`).
    pub failed: usize,
}

/// Deletes every archive in `folder` whose time is up, and fails every build cut off, each
/// on the record once (however many instances sweep at once: each row changes state once).
/// Errors: the database's.
pub async fn sweep(
    db: &DatabaseConnection,
    folder: &Path,
    now: DateTime<Utc>,
) -> Result<Swept, DbErr> {
    let mut swept = Swept::default();
    let due = backup_job::Entity::find()
        .filter(backup_job::Column::State.eq(JobState::Ready.as_str()))
        .filter(backup_job::Column::ExpiresAt.lte(now))
        .all(db)
        .await?;
    for job in due {
        let txn = db.begin().await?;
        let expired = retire_ready(&txn, job.id, JobState::Expired, now).await?;
        if expired {
            audit::record(
                &txn,
                job.org_id,
                Event {
                    action: AuditAction::BackupExpired,
                    actor: None,
                    target: None,
                    outcome: Outcome::Success,
                    details: json!({ "backup": job.id, "downloads": job.downloads }),
                },
                &Source::default(),
                now,
            )
            .await?;
            swept.expired += 1;
        }
        txn.commit().await?;
        if expired && let Some(file) = job.file {
            remove(&folder.join(file));
        }
    }
    let stale = backup_job::Entity::find()
        .filter(backup_job::Column::State.eq(JobState::Building.as_str()))
        .filter(backup_job::Column::UpdatedAt.lte(now - STALE_AFTER))
        .all(db)
        .await?;
    for job in stale {
        let requester = match job.requested_by_id {
            Some(member) => identity::member(db, member).await?,
            None => None,
        };
        let (partial, _) = file_names(job.org_id, job.id);
        fail(
            db,
            &job,
            requester.as_ref(),
            folder,
            &partial,
            &Failure {
                shown: "The server stopped while building it. Request it again.",
                cause: format!("no progress for {} minutes", STALE_AFTER.num_minutes()),
            },
        )
        .await?;
        swept.failed += 1;
    }
    Ok(swept)
}

/// A writer that passes everything on and keeps its size and SHA-256.
struct HashingWriter<W> {
    inner: W,
    digest: SharedDigest,
}

/// The size and hash of what a [`HashingWriter`] wrote, readable after it is gone.
#[derive(Clone, Default)]
struct SharedDigest(std::sync::Arc<std::sync::Mutex<(i64, Sha256)>>);

impl SharedDigest {
    fn finish(&self) -> (i64, String) {
        let held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (held.0, hex::encode(held.1.clone().finalize()))
    }
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            digest: SharedDigest::default(),
        }
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut held = self
            .digest
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.0 += i64::try_from(n).unwrap_or(0);
        held.1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
