//! Admin-issued recovery codes: one single-use code an admin issues for a member who lost
//! both their authenticator and their backup codes, valid for a day, optionally only once
//! a second admin approved it. And the policy setting that asks for that approval.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261127_000002_create_user_account::UserAccount,
    m20261128_000005_create_org_policy::OrgPolicy,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OrgPolicy::Table)
                    .add_column(boolean(RecoveryPolicy::RecoveryCodeApproval).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCode::Table)
                    .col(pk_auto(RecoveryCode::Id))
                    .col(integer(RecoveryCode::OrgId))
                    // The member the code is for.
                    .col(integer(RecoveryCode::UserId))
                    .col(integer_null(RecoveryCode::RequestedById))
                    .col(string_len(RecoveryCode::RequestedBy, 254))
                    .col(timestamp_with_time_zone(RecoveryCode::RequestedAt))
                    .col(integer_null(RecoveryCode::ApprovedById))
                    .col(string_len_null(RecoveryCode::ApprovedBy, 254))
                    .col(timestamp_with_time_zone_null(RecoveryCode::ApprovedAt))
                    // Made when revealed: argon2id(code, salt, pepper), never the code.
                    .col(blob_null(RecoveryCode::Salt))
                    .col(blob_null(RecoveryCode::Digest))
                    .col(string_len_null(RecoveryCode::Params, 64))
                    .col(timestamp_with_time_zone_null(RecoveryCode::RevealedAt))
                    .col(timestamp_with_time_zone_null(RecoveryCode::UsedAt))
                    // Set when a newer request replaces this one, or an admin cancels it.
                    .col(timestamp_with_time_zone_null(RecoveryCode::EndedAt))
                    .col(timestamp_with_time_zone(RecoveryCode::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recovery_code_user")
                            .from(RecoveryCode::Table, RecoveryCode::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recovery_code_user")
                    .table(RecoveryCode::Table)
                    .col(RecoveryCode::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecoveryCode::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OrgPolicy::Table)
                    .drop_column(RecoveryPolicy::RecoveryCodeApproval)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RecoveryPolicy {
    RecoveryCodeApproval,
}

#[derive(DeriveIden)]
pub enum RecoveryCode {
    Table,
    Id,
    OrgId,
    UserId,
    RequestedById,
    RequestedBy,
    RequestedAt,
    ApprovedById,
    ApprovedBy,
    ApprovedAt,
    Salt,
    Digest,
    Params,
    RevealedAt,
    UsedAt,
    EndedAt,
    ExpiresAt,
}
