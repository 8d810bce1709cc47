//! Groups of members ("Engineering", "Contractors"): who is in each, an exception a group may
//! hold from the organization's backup-code setting, and the groups a help-desk member is
//! scoped to. The gate reads membership from Casbin grouping rows
//! (`g, member:<id>, group:<id>, org:<id>`, domain in `v2`), written with these rows in one
//! transaction; the index on `v2` lets it load one organization's.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261127_000001_create_organization::Organization,
    m20261127_000002_create_user_account::UserAccount,
    m20261128_000005_create_org_policy::CasbinRule,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const GROUPING_INDEX: &str = "ix_casbin_rule_grouping_domain";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MemberGroup::Table)
                    .col(pk_auto(MemberGroup::Id))
                    .col(integer(MemberGroup::OrgId))
                    .col(string_len(MemberGroup::Name, 100))
                    // The name as compared: trimmed and lower-cased, unique in the organization.
                    .col(string_len(MemberGroup::NameKey, 100))
                    // `allow` or `deny`: backup codes for the group's members whatever the
                    // organization's setting (a member's own exception still wins); none when
                    // the group follows the setting.
                    .col(string_len_null(MemberGroup::Exception, 8))
                    .col(string_len_null(MemberGroup::ExceptionReason, 500))
                    .col(integer_null(MemberGroup::CreatedById))
                    .col(string_len_null(MemberGroup::CreatedBy, 254))
                    .col(timestamp_with_time_zone(MemberGroup::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_member_group_org")
                            .from(MemberGroup::Table, MemberGroup::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Names are unique in an organization as people read them (case aside), however many
        // creations arrive at once.
        manager
            .create_index(
                Index::create()
                    .name("ux_member_group_name")
                    .table(MemberGroup::Table)
                    .col(MemberGroup::OrgId)
                    .col(MemberGroup::NameKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GroupMember::Table)
                    .col(pk_auto(GroupMember::Id))
                    .col(integer(GroupMember::OrgId))
                    .col(integer(GroupMember::GroupId))
                    .col(integer(GroupMember::UserId))
                    .col(timestamp_with_time_zone(GroupMember::AddedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_group_member_group")
                            .from(GroupMember::Table, GroupMember::GroupId)
                            .to(MemberGroup::Table, MemberGroup::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_group_member_user")
                            .from(GroupMember::Table, GroupMember::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One membership per member and group, however many adds arrive at once.
        manager
            .create_index(
                Index::create()
                    .name("ux_group_member")
                    .table(GroupMember::Table)
                    .col(GroupMember::GroupId)
                    .col(GroupMember::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_group_member_user")
                    .table(GroupMember::Table)
                    .col(GroupMember::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HelpdeskScope::Table)
                    .col(pk_auto(HelpdeskScope::Id))
                    .col(integer(HelpdeskScope::OrgId))
                    .col(integer(HelpdeskScope::UserId))
                    .col(integer(HelpdeskScope::GroupId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_helpdesk_scope_user")
                            .from(HelpdeskScope::Table, HelpdeskScope::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_helpdesk_scope_group")
                            .from(HelpdeskScope::Table, HelpdeskScope::GroupId)
                            .to(MemberGroup::Table, MemberGroup::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_helpdesk_scope")
                    .table(HelpdeskScope::Table)
                    .col(HelpdeskScope::UserId)
                    .col(HelpdeskScope::GroupId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(GROUPING_INDEX)
                    .table(CasbinRule::Table)
                    .col(CasbinRule::V2)
                    .col(CasbinRule::Ptype)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(GROUPING_INDEX)
                    .table(CasbinRule::Table)
                    .to_owned(),
            )
            .await?;
        for table in [
            HelpdeskScope::Table.into_iden(),
            GroupMember::Table.into_iden(),
            MemberGroup::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum MemberGroup {
    Table,
    Id,
    OrgId,
    Name,
    NameKey,
    Exception,
    ExceptionReason,
    CreatedById,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum GroupMember {
    Table,
    Id,
    OrgId,
    GroupId,
    UserId,
    AddedAt,
}

#[derive(DeriveIden)]
pub enum HelpdeskScope {
    Table,
    Id,
    OrgId,
    UserId,
    GroupId,
}
