//! The domain crate's integration tests: business rules on real databases after migrations
//! (SQLite always, PostgreSQL when `LIFELINE_TEST_POSTGRES_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod api_tokens;
mod audit;
mod backup;
mod backup_codes;
mod backup_jobs;
mod digest;
mod events;
mod fixtures;
mod grace;
mod groups;
mod incidents;
mod layers;
mod lockout;
mod members;
mod mfa;
mod notification_addresses;
mod notifications;
mod org_policy;
mod recovery_codes;
mod report;
mod roles;
mod setup;
mod standing;
mod storage;
mod webhooks;
