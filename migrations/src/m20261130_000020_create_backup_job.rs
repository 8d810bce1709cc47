//! Data backups requested in the console (issue 15): one row per request, with its progress
//! while it is built, where its archive is kept while it may be downloaded, and what became
//! of it. The archive itself is a file in the server's backup folder, encrypted to the
//! requester's passphrase; the database never holds the passphrase.
//!
//! Also the policy's choice to let administrators (not only owners) request backups.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_organization::Organization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BackupJob::Table)
                    .col(pk_auto(BackupJob::Id))
                    .col(integer(BackupJob::OrgId))
                    .col(integer_null(BackupJob::RequestedById))
                    .col(string_len(BackupJob::RequestedBy, 254))
                    .col(timestamp_with_time_zone(BackupJob::RequestedAt))
                    // building, ready, failed, expired or deleted.
                    .col(string_len(BackupJob::State, 16))
                    .col(big_integer(BackupJob::RowsWritten).default(0))
                    .col(big_integer(BackupJob::RowsTotal).default(0))
                    // Moves with the progress: a build whose beat stops was cut off.
                    .col(timestamp_with_time_zone(BackupJob::UpdatedAt))
                    // The archive's file name in the backup folder, while it exists.
                    .col(string_len_null(BackupJob::File, 255))
                    .col(big_integer_null(BackupJob::Bytes))
                    .col(string_len_null(BackupJob::Sha256, 64))
                    .col(string_len_null(BackupJob::Error, 500))
                    .col(timestamp_with_time_zone_null(BackupJob::FinishedAt))
                    .col(timestamp_with_time_zone_null(BackupJob::ExpiresAt))
                    .col(integer(BackupJob::Downloads).default(0))
                    .col(timestamp_with_time_zone_null(BackupJob::LastDownloadedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_backup_job_org")
                            .from(BackupJob::Table, BackupJob::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_backup_job_org_requested")
                    .table(BackupJob::Table)
                    .col(BackupJob::OrgId)
                    .col(BackupJob::RequestedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OrgPolicy::Table)
                    .add_column(boolean(OrgPolicy::AdminsRequestBackups).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OrgPolicy::Table)
                    .drop_column(OrgPolicy::AdminsRequestBackups)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(BackupJob::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BackupJob {
    Table,
    Id,
    OrgId,
    RequestedById,
    RequestedBy,
    RequestedAt,
    State,
    RowsWritten,
    RowsTotal,
    UpdatedAt,
    File,
    Bytes,
    Sha256,
    Error,
    FinishedAt,
    ExpiresAt,
    Downloads,
    LastDownloadedAt,
}

#[derive(DeriveIden)]
enum OrgPolicy {
    Table,
    AdminsRequestBackups,
}
