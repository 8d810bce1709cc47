//! "This wasn't me" reports, one per link (the link's nonce is unique, so a link works once),
//! each organization's choice of the alerts its administrators get, and an index for the
//! alert on refused codes (one member's recent events of one action); when a member read
//! each notification in the app; each member's second notification address, verified by a
//! link sent to it; and alerts kept for an organization's daily digest.

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
                    .table(IncidentReport::Table)
                    .col(pk_auto(IncidentReport::Id))
                    .col(integer(IncidentReport::OrgId))
                    // Kept when the member is removed: the report stays on the record.
                    .col(integer_null(IncidentReport::UserId))
                    // The link's nonce: a second click finds it taken.
                    .col(string_len_uniq(IncidentReport::Nonce, 64))
                    .col(timestamp_with_time_zone(IncidentReport::ReportedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_incident_report_org")
                            .from(IncidentReport::Table, IncidentReport::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_incident_report_user")
                            .from(IncidentReport::Table, IncidentReport::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlertSettings::Table)
                    .col(integer(AlertSettings::OrgId).primary_key())
                    .col(boolean(AlertSettings::IssuedCode).default(true))
                    .col(boolean(AlertSettings::PrivilegedBackupSignIn).default(true))
                    .col(boolean(AlertSettings::FailedRedemptions).default(true))
                    .col(integer(AlertSettings::FailedRedemptionsCount).default(10))
                    .col(integer(AlertSettings::FailedRedemptionsMinutes).default(10))
                    .col(boolean(AlertSettings::Lock).default(true))
                    .col(boolean(AlertSettings::PolicyLoosened).default(true))
                    .col(boolean(AlertSettings::Incident).default(true))
                    // Alerts kept for one message a day instead of sent at once.
                    .col(boolean(AlertSettings::DailyDigest).default(false))
                    .col(timestamp_with_time_zone(AlertSettings::SavedAt))
                    .col(string_len_null(AlertSettings::SavedBy, 254))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alert_settings_org")
                            .from(AlertSettings::Table, AlertSettings::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AlertDigestItem::Table)
                    .col(pk_auto(AlertDigestItem::Id))
                    .col(integer(AlertDigestItem::OrgId))
                    // The administrator the digest goes to.
                    .col(integer(AlertDigestItem::UserId))
                    .col(string_len(AlertDigestItem::Recipient, 254))
                    .col(string_len(AlertDigestItem::Subject, 200))
                    .col(text(AlertDigestItem::BodyText))
                    // Set for an alert kept once however often it is raised.
                    .col(string_len_null(AlertDigestItem::DedupeKey, 200).unique_key())
                    .col(timestamp_with_time_zone(AlertDigestItem::CreatedAt))
                    // The digest moment it went out with.
                    .col(timestamp_with_time_zone_null(AlertDigestItem::DigestedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alert_digest_item_org")
                            .from(AlertDigestItem::Table, AlertDigestItem::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alert_digest_item_user")
                            .from(AlertDigestItem::Table, AlertDigestItem::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_alert_digest_item_waiting")
                    .table(AlertDigestItem::Table)
                    .col(AlertDigestItem::DigestedAt)
                    .col(AlertDigestItem::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationAddress::Table)
                    .col(pk_auto(NotificationAddress::Id))
                    // One second address per member.
                    .col(integer_uniq(NotificationAddress::UserId))
                    .col(string_len(NotificationAddress::Email, 254))
                    // SHA-256 of the verification link's token, hex; the token is only in
                    // the message sent to the address.
                    .col(string_len_uniq(NotificationAddress::TokenDigest, 64))
                    .col(timestamp_with_time_zone(NotificationAddress::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        NotificationAddress::VerifiedAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notification_address_user")
                            .from(NotificationAddress::Table, NotificationAddress::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(NotificationOutbox::Table)
                    .add_column(timestamp_with_time_zone_null(NotificationOutbox::ReadAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_event_target_action_at")
                    .table(AuditEvent::Table)
                    .col(AuditEvent::TargetId)
                    .col(AuditEvent::Action)
                    .col(AuditEvent::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AlertDigestItem::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(NotificationAddress::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_audit_event_target_action_at")
                    .table(AuditEvent::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(NotificationOutbox::Table)
                    .drop_column(NotificationOutbox::ReadAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AlertSettings::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(IncidentReport::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum NotificationAddress {
    Table,
    Id,
    UserId,
    Email,
    TokenDigest,
    CreatedAt,
    VerifiedAt,
}

#[derive(DeriveIden)]
enum NotificationOutbox {
    Table,
    ReadAt,
}

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    TargetId,
    Action,
    At,
}

#[derive(DeriveIden)]
enum IncidentReport {
    Table,
    Id,
    OrgId,
    UserId,
    Nonce,
    ReportedAt,
}

#[derive(DeriveIden)]
enum AlertSettings {
    Table,
    OrgId,
    IssuedCode,
    PrivilegedBackupSignIn,
    FailedRedemptions,
    FailedRedemptionsCount,
    FailedRedemptionsMinutes,
    Lock,
    PolicyLoosened,
    Incident,
    DailyDigest,
    SavedAt,
    SavedBy,
}

#[derive(DeriveIden)]
enum AlertDigestItem {
    Table,
    Id,
    OrgId,
    UserId,
    Recipient,
    Subject,
    BodyText,
    DedupeKey,
    CreatedAt,
    DigestedAt,
}
