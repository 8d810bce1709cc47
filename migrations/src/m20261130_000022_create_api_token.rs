//! Personal access tokens for the JSON API (`/api/v1`): an owner or admin makes one in the
//! console, named, scoped and with an expiry; the token is shown once and only its SHA-256
//! digest is kept. A call with it acts as its owner, so removing the owner removes it.

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
                    .table(ApiToken::Table)
                    .col(pk_auto(ApiToken::Id))
                    .col(integer(ApiToken::OrgId))
                    .col(integer(ApiToken::MemberId))
                    .col(string_len(ApiToken::Name, 80))
                    // The token's first characters, to tell tokens apart in the console.
                    .col(string_len(ApiToken::Prefix, 24))
                    // SHA-256 of the whole token, hex: the token itself is never stored.
                    .col(string_len_uniq(ApiToken::Digest, 64))
                    // Space-separated scopes (`members:read audit:read`).
                    .col(string_len(ApiToken::Scopes, 400))
                    .col(timestamp_with_time_zone(ApiToken::CreatedAt))
                    .col(timestamp_with_time_zone(ApiToken::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiToken::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiToken::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_token_org")
                            .from(ApiToken::Table, ApiToken::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_token_member")
                            .from(ApiToken::Table, ApiToken::MemberId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_token_org")
                    .table(ApiToken::Table)
                    .col(ApiToken::OrgId)
                    .col(ApiToken::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiToken::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum ApiToken {
    Table,
    Id,
    OrgId,
    MemberId,
    Name,
    Prefix,
    Digest,
    Scopes,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}
