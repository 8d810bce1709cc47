//! The backup page, for owners (and admins when the policy lets them): request an encrypted
//! backup of the organization's data, follow it being built, download it while it is kept,
//! delete it early.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One requested backup, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRow {
    pub id: i32,
    pub requested_by: String,
    pub requested_at: String,
    /// `Building`, `Ready`, `Failed`, `Expired` or `Deleted`.
    pub state: String,
    /// Rows written so far and in all (0 until counted), for the progress bar.
    pub rows_written: i64,
    pub rows_total: i64,
    /// The archive's size in words, once ready.
    pub size: String,
    /// Hex SHA-256 of the archive, once ready.
    pub sha256: String,
    /// Why it failed, in words.
    pub error: String,
    /// When a ready archive is deleted.
    pub expires_at: String,
    pub downloads: i32,
    /// The viewer requested it: they may download it (they hold its passphrase).
    pub mine: bool,
    /// The viewer may delete it now (theirs or, for an owner, anyone's; ready).
    pub may_delete: bool,
}

/// The backup page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupsOverview {
    pub per_day: u32,
    pub requested_today: u32,
    /// Days a ready archive is kept.
    pub kept_days: i64,
    pub backups: Vec<BackupRow>,
}

impl BackupsOverview {
    /// Whether a backup is being built (the page then follows its progress).
    pub fn building(&self) -> bool {
        self.backups.iter().any(|row| row.state == "Building")
    }
}

/// The organization's latest backup requests.
#[server(endpoint = "admin/backups")]
pub async fn get_backups() -> Result<BackupsOverview, AppError> {
    use domain::backup::jobs::{self, JobState};
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let overview = jobs::overview(
            &state.db,
            &state.authz,
            &member,
            state.backups.per_day,
            chrono::Utc::now(),
        )
        .await?;
        let time = crate::api::readable_time;
        let owner = member.role == domain::identity::Role::Owner;
        Ok(BackupsOverview {
            per_day: overview.per_day,
            requested_today: overview.requested_today,
            kept_days: jobs::KEPT_FOR.num_days(),
            backups: overview
                .jobs
                .into_iter()
                .map(|job| {
                    let mine = job.requested_by_id == Some(member.id);
                    BackupRow {
                        id: job.id,
                        state: match job.state {
                            JobState::Building => "Building",
                            JobState::Ready => "Ready",
                            JobState::Failed => "Failed",
                            JobState::Expired => "Expired",
                            JobState::Deleted => "Deleted",
                        }
                        .to_owned(),
                        requested_by: job.requested_by,
                        requested_at: time(job.requested_at),
                        rows_written: job.rows_written,
                        rows_total: job.rows_total,
                        size: job.bytes.map(readable_size).unwrap_or_default(),
                        sha256: job.sha256.unwrap_or_default(),
                        error: job.error.unwrap_or_default(),
                        expires_at: job.expires_at.map(time).unwrap_or_default(),
                        downloads: job.downloads,
                        may_delete: job.state == JobState::Ready && (mine || owner),
                        mine,
                    }
                })
                .collect(),
        })
    })
    .await
}

/// `1.4 MB`, `820 KB`, `312 bytes`.
#[cfg(feature = "ssr")]
fn readable_size(bytes: i64) -> String {
    const KB: f64 = 1000.0;
    let bytes_f = bytes as f64;
    if bytes_f >= KB * KB {
        format!("{:.1} MB", bytes_f / KB / KB)
    } else if bytes_f >= KB {
        format!("{:.0} KB", bytes_f / KB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Requests a backup encrypted to `passphrase` (typed twice); it is built in the background
/// on this server while the page shows its progress.
#[server(endpoint = "admin/backups/request")]
pub async fn request_backup(passphrase: String, passphrase_again: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let cmd = crate::auth::command(&state, &member, &source);
        // The gate first, so that a member who may not request one learns that, not how
        // strong a passphrase must be.
        domain::backup::jobs::may_request(&cmd).await?;
        let org = domain::accounts::organization(&state.db, member.org_id).await?;
        let passphrase = domain::backup::Passphrase::new_for_archive(
            &passphrase,
            &passphrase_again,
            &[
                org.name.as_str(),
                org.slug.as_str(),
                member.email.as_str(),
                "lifeline",
                "backup",
            ],
        )?;
        let job = domain::backup::jobs::request(&cmd, state.backups.per_day).await?;
        tracing::info!(member = member.id, backup = job.id, "backup requested");
        domain::backup::jobs::spawn_build(
            state.db.clone(),
            state.secret_key.clone(),
            job.id,
            passphrase,
            state.backups.folder.clone(),
        );
        leptos_axum::redirect("/admin/backup?requested=1");
        Ok(())
    })
    .await
}

/// Deletes a ready backup's archive before its time.
#[server(endpoint = "admin/backups/delete")]
pub async fn delete_backup(backup_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::backup::jobs::delete(
            &crate::auth::command(&state, &member, &source),
            backup_id,
            &state.backups.folder,
        )
        .await?;
        leptos_axum::redirect("/admin/backup?deleted=1");
        Ok(())
    })
    .await
}
