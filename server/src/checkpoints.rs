//! Signs a checkpoint of each organization's audit chain whose head moved, at an interval
//! (`LIFELINE_AUDIT_CHECKPOINT_SECONDS`): the record an auditor copies out of the database
//! (`lifeline audit checkpoint` signs one on demand), and the one `lifeline audit verify`
//! checks a cut-back log against while it is still stored.

use std::time::Duration;

use domain::db::DatabaseConnection;

/// Runs [`domain::audit::checkpoint::sign_moved_chains`] every `every`, for the life of the
/// process, the first time one interval after start-up. Every instance may run it.
pub fn spawn(db: DatabaseConnection, every: Duration) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + every;
        let mut ticks = tokio::time::interval_at(start, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match domain::audit::checkpoint::sign_moved_chains(&db, chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(signed) => tracing::info!(signed, "audit checkpoints signed"),
                Err(error) => tracing::warn!(%error, "signing audit checkpoints"),
            }
        }
    });
}
