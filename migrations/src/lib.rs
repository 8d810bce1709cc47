//! Lifeline's database schema, one SeaORM migration per change, each with a working `down`.
//!
//! The same migrations run on SQLite (the embedded default) and on PostgreSQL. The server
//! applies pending migrations at start-up.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_organization;
mod m20261127_000002_create_user_account;
mod m20261128_000003_create_backup_codes;
mod m20261128_000004_create_audit_event;
mod m20261128_000005_create_org_policy;
mod m20261128_000006_create_recovery_code;
mod m20261128_000007_add_mfa_setup_required;
mod m20261128_000008_add_code_lockout;
mod m20261128_000009_add_set_expired_at;
mod m20261128_000010_create_factor_lockout;
mod m20261128_000011_add_session_epoch;
mod m20261128_000012_index_casbin_rule_domain;
mod m20261129_000013_create_factor_attempt;
mod m20261129_000014_add_asked_slot;
mod m20261129_000015_key_audit_chain;
mod m20261129_000016_add_totp_key_version;
mod m20261129_000017_create_notification_outbox;
mod m20261129_000018_create_incident_report_and_alert_settings;
mod m20261130_000019_create_webhook;
mod m20261130_000020_create_backup_job;
mod m20261130_000021_index_pending_notifications;
mod m20261130_000022_create_api_token;
mod m20261130_000023_index_audit_event_org_action_at;
mod m20261130_000024_count_spent_codes_on_set;
mod m20261130_000025_withhold_codes_from_new_roles;
mod m20261130_000026_create_code_use_day;
mod m20261130_000027_add_replace_when_low;
mod m20261130_000028_add_totp_replacement;
mod m20261130_000029_add_required_from;
mod m20261201_000030_add_recovery_code_rules;
mod m20261201_000031_create_member_group;
mod m20261201_000032_cover_casbin_rule_domain_indexes;
mod m20261201_000033_cover_user_account_org_index;

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_organization::Migration),
            Box::new(m20261127_000002_create_user_account::Migration),
            Box::new(m20261128_000003_create_backup_codes::Migration),
            Box::new(m20261128_000004_create_audit_event::Migration),
            Box::new(m20261128_000005_create_org_policy::Migration),
            Box::new(m20261128_000006_create_recovery_code::Migration),
            Box::new(m20261128_000007_add_mfa_setup_required::Migration),
            Box::new(m20261128_000008_add_code_lockout::Migration),
            Box::new(m20261128_000009_add_set_expired_at::Migration),
            Box::new(m20261128_000010_create_factor_lockout::Migration),
            Box::new(m20261128_000011_add_session_epoch::Migration),
            Box::new(m20261128_000012_index_casbin_rule_domain::Migration),
            Box::new(m20261129_000013_create_factor_attempt::Migration),
            Box::new(m20261129_000014_add_asked_slot::Migration),
            Box::new(m20261129_000015_key_audit_chain::Migration),
            Box::new(m20261129_000016_add_totp_key_version::Migration),
            Box::new(m20261129_000017_create_notification_outbox::Migration),
            Box::new(m20261129_000018_create_incident_report_and_alert_settings::Migration),
            Box::new(m20261130_000019_create_webhook::Migration),
            Box::new(m20261130_000020_create_backup_job::Migration),
            Box::new(m20261130_000021_index_pending_notifications::Migration),
            Box::new(m20261130_000022_create_api_token::Migration),
            Box::new(m20261130_000023_index_audit_event_org_action_at::Migration),
            Box::new(m20261130_000024_count_spent_codes_on_set::Migration),
            Box::new(m20261130_000025_withhold_codes_from_new_roles::Migration),
            Box::new(m20261130_000026_create_code_use_day::Migration),
            Box::new(m20261130_000027_add_replace_when_low::Migration),
            Box::new(m20261130_000028_add_totp_replacement::Migration),
            Box::new(m20261130_000029_add_required_from::Migration),
            Box::new(m20261201_000030_add_recovery_code_rules::Migration),
            Box::new(m20261201_000031_create_member_group::Migration),
            Box::new(m20261201_000032_cover_casbin_rule_domain_indexes::Migration),
            Box::new(m20261201_000033_cover_user_account_org_index::Migration),
        ]
    }
}
