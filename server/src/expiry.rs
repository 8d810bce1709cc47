//! The policy's clock: puts the expiry of code sets on the audit record soon after it
//! happens, rather than only when their owner next tries a code (an auditor reading the log
//! sees when each set stopped working under the organization's maximum set age), and sends
//! the reminders of "Required"'s deadline ([`domain::members::reminders::send_reminders`]).

use std::time::Duration;

use domain::{authz::Authz, db::DatabaseConnection};

/// How often the sets of every organization are looked at.
const EVERY: Duration = Duration::from_secs(300);

/// Runs [`domain::org_policy::record_all_expiries`] and the reminders now and then every
/// [`EVERY`], for the life of the process. Every instance may run it: each expiry is recorded
/// once, and each reminder sent once.
pub fn spawn(db: DatabaseConnection, authz: Authz) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match domain::org_policy::record_all_expiries(&db, chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(recorded) => tracing::info!(recorded, "code set expiries recorded"),
                Err(error) => tracing::warn!(%error, "recording code set expiries"),
            }
            let now = chrono::Utc::now();
            match domain::members::reminders::send_reminders(&db, &authz, now).await {
                Ok(0) => {}
                Ok(sent) => tracing::info!(sent, "reminders of Required's deadline sent"),
                Err(error) => tracing::warn!(%error, "sending reminders of Required's deadline"),
            }
        }
    });
}
