//! The server crate's integration tests: the real `lifeline` binary, started as a process on
//! a free port against a fresh database (SQLite always, PostgreSQL when
//! `LIFELINE_TEST_POSTGRES_URL` is set), spoken to over HTTP. Every module takes what it
//! shares from `support`, and none from another test module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod admin_home;
mod api;
mod audit;
mod backup;
mod backup_codes;
mod backup_schedule;
mod brute_force;
mod crash;
mod hardening;
mod hasher_bound;
mod isolation;
mod keys;
mod lifecycle;
mod limits;
mod not_me;
mod notifications;
mod page_errors;
mod pages;
mod policy;
mod scale_out;
mod session_writes;
mod sessions;
mod setup;
mod support;
mod webhooks;
