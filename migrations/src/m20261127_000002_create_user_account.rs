//! Members of organizations: their sign-in credentials, role and authenticator (TOTP).

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
                    .table(UserAccount::Table)
                    .col(pk_auto(UserAccount::Id))
                    .col(integer(UserAccount::OrgId))
                    // Stored trimmed and lower-cased, so the unique index is case-insensitive.
                    .col(string_len_uniq(UserAccount::Email, 254))
                    // An argon2id PHC string; never the password.
                    .col(string_len(UserAccount::PasswordHash, 255))
                    .col(string_len(UserAccount::Role, 16))
                    // The TOTP secret, encrypted with the server's secret key (nonce + ciphertext).
                    .col(blob_null(UserAccount::TotpSecret))
                    .col(timestamp_with_time_zone_null(UserAccount::TotpEnabledAt))
                    // The last accepted TOTP time step: a code is never accepted twice.
                    .col(big_integer_null(UserAccount::TotpLastStep))
                    .col(timestamp_with_time_zone(UserAccount::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_account_org")
                            .from(UserAccount::Table, UserAccount::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_user_account_org")
                    .table(UserAccount::Table)
                    .col(UserAccount::OrgId)
                    .col(UserAccount::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserAccount::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum UserAccount {
    Table,
    Id,
    OrgId,
    Email,
    PasswordHash,
    Role,
    TotpSecret,
    TotpEnabledAt,
    TotpLastStep,
    CreatedAt,
}
