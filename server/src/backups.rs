//! Backups requested in the console, on the server's side: the download of an archive, and
//! the sweeper that deletes archives whose time is up and fails builds cut off by a stopped
//! server ([`domain::backup::jobs`]).

use std::{path::PathBuf, time::Duration};

use app::state::AppState;
use axum::{
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::{backup::jobs::BackupJobError, db::DatabaseConnection};

/// How often archives and builds are looked at.
const EVERY: Duration = Duration::from_secs(60);

/// Runs [`domain::backup::jobs::sweep`] now and then every [`EVERY`], for the life of the
/// process. Every instance may run it: each archive expires, and each build fails, once.
pub fn spawn_sweeper(db: DatabaseConnection, folder: PathBuf) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match domain::backup::jobs::sweep(&db, &folder, chrono::Utc::now()).await {
                Ok(swept) if swept == Default::default() => {}
                Ok(swept) => tracing::info!(
                    expired = swept.expired,
                    failed = swept.failed,
                    "backup archives swept"
                ),
                Err(error) => tracing::warn!(%error, "sweeping backup archives"),
            }
        }
    });
}

/// `GET /admin/backup/{id}/download`: the archive of a ready backup, streamed from its file,
/// for the member who requested it (on the record as `backup.downloaded`).
pub async fn download(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    parts: axum::http::request::Parts,
    id: Result<Path<i32>, axum::extract::rejection::PathRejection>,
) -> Response {
    let refuse = |status: StatusCode, message: &str| (status, message.to_owned()).into_response();
    let Ok(Path(id)) = id else {
        return refuse(StatusCode::NOT_FOUND, "There is no such backup.");
    };
    let member = match app::auth::current_member(&state, &session).await {
        Ok(Some(member)) => member,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "Please sign in to continue."),
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let source = app::auth::source_of(&parts);
    let cmd = app::auth::command(&state, &member, &source);
    let download = match domain::backup::jobs::download(&cmd, id, &state.backups.folder).await {
        Ok(download) => download,
        Err(error) => {
            let status = match error {
                BackupJobError::NotAllowed | BackupJobError::NotYours => StatusCode::FORBIDDEN,
                BackupJobError::UnknownBackup => StatusCode::NOT_FOUND,
                BackupJobError::NotReady => StatusCode::GONE,
                BackupJobError::Invalid(_) | BackupJobError::DailyLimit { .. } => {
                    StatusCode::BAD_REQUEST
                }
                BackupJobError::Folder(_)
                | BackupJobError::Policy(_)
                | BackupJobError::Database(_) => {
                    tracing::error!(%error, backup = id, "backup download");
                    return refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong on our side. Please try again.",
                    );
                }
            };
            return refuse(status, &error.to_string());
        }
    };
    let file = match tokio::fs::File::open(&download.path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(%error, backup = id, "backup archive missing from the folder");
            return refuse(
                StatusCode::GONE,
                "The archive is no longer in the backup folder. Request a new backup.",
            );
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, download.bytes)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", download.file_name),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
        .unwrap_or_else(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "download"))
}
