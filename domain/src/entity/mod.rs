//! SeaORM entities: the rows as the database holds them. Only this crate touches them.

pub mod alert_digest_item;
pub mod alert_settings;
pub mod api_token;
pub mod audit_chain_head;
pub mod audit_checkpoint;
pub mod audit_event;
pub mod backup_code;
pub mod backup_code_set;
pub mod backup_job;
pub mod casbin_rule;
pub mod code_use_day;
pub mod factor_attempt;
pub mod group_member;
pub mod helpdesk_scope;
pub mod incident_report;
pub mod member_group;
pub mod notification_address;
pub mod notification_outbox;
pub mod org_policy;
pub mod organization;
pub mod policy_exception;
pub mod policy_revision;
pub mod recovery_code;
pub mod user_account;
pub mod webhook;
