//! The audit page's word on each chain, kept without walking every event on every load.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use super::{ChainKeys, ChainState, Place, verify_after};
use crate::{
    audit::keys,
    entity::{audit_chain_head, audit_event},
};

/// Chains up to this many events are verified whole on first sight, before the page shows;
/// longer ones in the background.
const VERIFY_INLINE_UP_TO: i64 = 20_000;
/// How often each chain is verified whole again, from its first event.
const FULL_CHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Keeps the audit page's word on each organization's chain without walking a million
/// events on every load: the chain is verified whole once, then each look verifies only
/// the events appended since (and re-checks the last verified one against its stored hash),
/// and the whole chain is verified again in the background every [`FULL_CHECK_EVERY`].
/// An edit to an old event therefore shows within that period; `lifeline audit verify`
/// always walks the whole chain.
#[derive(Clone, Default)]
pub struct ChainMonitor {
    checked: Arc<Mutex<HashMap<i32, Checked>>>,
    running: Arc<Mutex<HashSet<i32>>>,
}

#[derive(Debug, Clone)]
struct Checked {
    state: ChainState,
    through: Place,
    full_check_at: DateTime<Utc>,
}

/// What the audit page says of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainReport {
    /// Verified: whole at `full_check_at`, and every event appended since.
    Checked {
        state: ChainState,
        full_check_at: DateTime<Utc>,
    },
    /// A long chain seen for the first time: its verification is running.
    Verifying,
}

impl ChainMonitor {
    /// The chain of `org_id` as of now, verifying what is new since the last look.
    pub async fn report(
        &self,
        db: &DatabaseConnection,
        org_id: i32,
        now: DateTime<Utc>,
    ) -> Result<ChainReport, DbErr> {
        let known = self.lock_checked().get(&org_id).cloned();
        let Some(known) = known else {
            let head = audit_chain_head::Entity::find_by_id(org_id)
                .one(db)
                .await?
                .map_or(0, |head| head.seq);
            if head > VERIFY_INLINE_UP_TO {
                self.check_whole_in_background(db, org_id, now);
                return Ok(ChainReport::Verifying);
            }
            let checked = self.check_whole(db, org_id, now).await?;
            return Ok(ChainReport::Checked {
                state: checked.state,
                full_check_at: checked.full_check_at,
            });
        };
        if now - known.full_check_at >= FULL_CHECK_EVERY {
            self.check_whole_in_background(db, org_id, now);
        }
        if known.state.broken.is_some() {
            return Ok(ChainReport::Checked {
                state: known.state,
                full_check_at: known.full_check_at,
            });
        }
        // The last verified event must still be the one verified; then only the new ones.
        let tip_intact = known.through.seq == 0
            || match audit_event::Entity::find()
                .filter(audit_event::Column::OrgId.eq(org_id))
                .filter(audit_event::Column::Seq.eq(known.through.seq))
                .one(db)
                .await?
            {
                Some(row) => {
                    row.hash == known.through.hash
                        && ChainKeys::new(keys::installed()?).own_link(&row).is_ok()
                }
                None => false,
            };
        let (state, through) = if tip_intact {
            verify_after(db, org_id, known.through).await?
        } else {
            // Something changed under the last verified event: find what, from the start.
            verify_after(db, org_id, Place::genesis()).await?
        };
        let checked = Checked {
            state: state.clone(),
            through,
            full_check_at: known.full_check_at,
        };
        self.store(org_id, checked);
        Ok(ChainReport::Checked {
            state,
            full_check_at: known.full_check_at,
        })
    }

    async fn check_whole(
        &self,
        db: &DatabaseConnection,
        org_id: i32,
        now: DateTime<Utc>,
    ) -> Result<Checked, DbErr> {
        let (state, through) = verify_after(db, org_id, Place::genesis()).await?;
        let checked = Checked {
            state,
            through,
            full_check_at: now,
        };
        self.store(org_id, checked.clone());
        Ok(checked)
    }

    /// Verifies the whole chain on a task of its own, one at a time per organization.
    fn check_whole_in_background(&self, db: &DatabaseConnection, org_id: i32, now: DateTime<Utc>) {
        if !self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(org_id)
        {
            return;
        }
        let (monitor, db) = (self.clone(), db.clone());
        tokio::spawn(async move {
            if let Err(error) = monitor.check_whole(&db, org_id, now).await {
                tracing::warn!(%error, org_id, "verifying the audit chain");
            }
            monitor
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&org_id);
        });
    }

    fn store(&self, org_id: i32, checked: Checked) {
        let mut map = self.lock_checked();
        // A background check that started earlier must not replace a later look's word.
        let newer = map
            .get(&org_id)
            .is_none_or(|known| known.full_check_at <= checked.full_check_at);
        if newer {
            map.insert(org_id, checked);
        }
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Checked>> {
        self.checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
