//! Organization policy for backup codes: its versions (the policy document an admin saves,
//! with who, when and what changed), member exceptions, the Casbin rules they compile to
//! (`casbin_rule`, the table casbin's SeaORM adapter reads), and one revision counter that
//! every server instance checks to know its rules are current.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261127_000001_create_organization::Organization,
    m20261127_000002_create_user_account::UserAccount,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OrgPolicy::Table)
                    .col(pk_auto(OrgPolicy::Id))
                    .col(integer(OrgPolicy::OrgId))
                    // 1, 2, 3, … per organization; a save names the version it started from.
                    .col(integer(OrgPolicy::Version))
                    // `not_allowed`, `allowed` or `required`.
                    .col(string_len(OrgPolicy::BackupCodes, 16))
                    .col(integer(OrgPolicy::CodesPerSet))
                    .col(integer(OrgPolicy::MaxSetAgeDays))
                    .col(integer(OrgPolicy::LowCodesThreshold))
                    .col(integer(OrgPolicy::LockoutAttempts))
                    .col(integer(OrgPolicy::LockoutMinutes))
                    // `any` or `numbered`.
                    .col(string_len(OrgPolicy::CodeEntry, 16))
                    .col(boolean(OrgPolicy::RestrictAfterBackupSignIn))
                    .col(integer_null(OrgPolicy::SavedById))
                    .col(string_len_null(OrgPolicy::SavedBy, 254))
                    .col(timestamp_with_time_zone(OrgPolicy::SavedAt))
                    // A JSON list of {field, before, after}.
                    .col(text(OrgPolicy::Changes))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_org_policy_org")
                            .from(OrgPolicy::Table, OrgPolicy::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Two admins saving from the same version: the second insert fails, nothing is lost.
        manager
            .create_index(
                Index::create()
                    .name("ux_org_policy_version")
                    .table(OrgPolicy::Table)
                    .col(OrgPolicy::OrgId)
                    .col(OrgPolicy::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PolicyException::Table)
                    .col(pk_auto(PolicyException::Id))
                    .col(integer(PolicyException::OrgId))
                    .col(integer(PolicyException::UserId))
                    // `allow` or `deny`: backup codes for this member whatever the org says.
                    .col(string_len(PolicyException::Effect, 8))
                    .col(string_len(PolicyException::Reason, 500))
                    .col(integer_null(PolicyException::CreatedById))
                    .col(string_len_null(PolicyException::CreatedBy, 254))
                    .col(timestamp_with_time_zone(PolicyException::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_policy_exception_user")
                            .from(PolicyException::Table, PolicyException::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_policy_exception_user")
                    .table(PolicyException::Table)
                    .col(PolicyException::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The table casbin's SeaORM adapter reads, with the columns and unique key it expects
        // (it creates the table itself only when missing).
        let mut rule = Table::create();
        // A 64-bit id: the adapter reads it as i64 (on SQLite this is still INTEGER).
        rule.table(CasbinRule::Table)
            .col(big_integer(CasbinRule::Id).auto_increment().primary_key())
            .col(string_len(CasbinRule::Ptype, 12));
        for column in [
            CasbinRule::V0,
            CasbinRule::V1,
            CasbinRule::V2,
            CasbinRule::V3,
            CasbinRule::V4,
            CasbinRule::V5,
        ] {
            rule.col(string_len(column, 125));
        }
        manager.create_table(rule.to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("unique_key_sea_orm_adapter")
                    .table(CasbinRule::Table)
                    .col(CasbinRule::Ptype)
                    .col(CasbinRule::V0)
                    .col(CasbinRule::V1)
                    .col(CasbinRule::V2)
                    .col(CasbinRule::V3)
                    .col(CasbinRule::V4)
                    .col(CasbinRule::V5)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PolicyRevision::Table)
                    .col(pk_auto(PolicyRevision::Id))
                    // Raised in the same transaction as every change of rules: instances
                    // reload their rules when it differs from the one they loaded.
                    .col(big_integer(PolicyRevision::Revision))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("INSERT INTO policy_revision (revision) VALUES (0)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PolicyRevision::Table.into_iden(),
            CasbinRule::Table.into_iden(),
            PolicyException::Table.into_iden(),
            OrgPolicy::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum OrgPolicy {
    Table,
    Id,
    OrgId,
    Version,
    BackupCodes,
    CodesPerSet,
    MaxSetAgeDays,
    LowCodesThreshold,
    LockoutAttempts,
    LockoutMinutes,
    CodeEntry,
    RestrictAfterBackupSignIn,
    SavedById,
    SavedBy,
    SavedAt,
    Changes,
}

#[derive(DeriveIden)]
pub enum PolicyException {
    Table,
    Id,
    OrgId,
    UserId,
    Effect,
    Reason,
    CreatedById,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum CasbinRule {
    Table,
    Id,
    Ptype,
    V0,
    V1,
    V2,
    V3,
    V4,
    V5,
}

#[derive(DeriveIden)]
pub enum PolicyRevision {
    Table,
    Id,
    Revision,
}
