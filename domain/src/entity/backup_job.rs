//! A data backup requested in the console, while it is built and kept (see
//! `domain::backup::jobs`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_job")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub requested_by_id: Option<i32>,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    /// `building`, `ready`, `failed`, `expired` or `deleted`.
    pub state: String,
    pub rows_written: i64,
    pub rows_total: i64,
    pub updated_at: DateTimeUtc,
    /// The archive's file name in the backup folder, while it exists.
    pub file: Option<String>,
    pub bytes: Option<i64>,
    /// Hex SHA-256 of the archive file, so a download can be checked against the page.
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub finished_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub downloads: i32,
    pub last_downloaded_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
