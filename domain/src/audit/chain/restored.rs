//! A chain restored from another installation's backup: its links were made under a key
//! this installation does not hold, so they are checked for what can be checked without it
//! and linked anew under this one. A chain restored as a new organization is linked anew too
//! (its ids, which the links cover, are new): when it is this installation's, each link is
//! first checked under the key against the ids the archive holds ([`ArchivedLinks`]).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use super::{ChainBreak, ChainKeys, GENESIS, PAGE};
use crate::{
    audit::keys::{self, ChainKey},
    entity::{audit_chain_head, audit_event},
};

/// The links of an archive's events, checked one at a time under this installation's key
/// with the ids the archive holds, before a restore renumbers them: what [`relink_restored`]
/// cannot check once the ids have changed. With its structure check after, against a head
/// this installation signed, the chain is verified as fully as `verify` would.
pub(crate) struct ArchivedLinks {
    keys: ChainKeys,
}

impl ArchivedLinks {
    /// Errors: no key installed.
    pub(crate) fn new() -> Result<Self, DbErr> {
        Ok(Self {
            keys: ChainKeys::new(keys::installed()?),
        })
    }

    /// Whether `event`, as the archive holds it, carries the keyed link its content makes.
    /// `Err`: the break it is, [`ChainBreak::Unkeyed`] for a plain link (a backup is taken
    /// of a chain that verifies, which has none).
    pub(crate) fn check(&mut self, event: &audit_event::Model) -> Result<(), ChainBreak> {
        if event.key_version.is_none() {
            return Err(ChainBreak::Unkeyed {
                seq: event.seq,
                id: event.id,
            });
        }
        self.keys.own_link(event)
    }
}

/// Re-links organization `org_id`'s chain, in `db` (the restore's transaction), under the
/// installed key's newest version, after checking what holds without the key that made it:
/// the events are numbered 1, 2, … without a gap, each names its predecessor's link, and the
/// last is `head` (the `(seq, hash)` the archive's signed checkpoint vouches for). Returns
/// the break when one of these fails (nothing is re-linked; the caller rolls back).
///
/// The archive's checkpoint, kept in the `backup.restored` event that follows, ties the new
/// links to the old: its signature, under the source installation's public key, covers the
/// last old link, which this check found at the end of the restored events.
///
/// Cost: one `UPDATE` per event (each new link depends on the one before), in pages of
/// [`PAGE`] reads.
pub(crate) async fn relink_restored(
    db: &impl ConnectionTrait,
    org_id: i32,
    head: (i64, &str),
) -> Result<Option<ChainBreak>, DbErr> {
    let chain_key = ChainKey::installed_current()?;
    let (mut seq, mut old_prev, mut new_prev) = (0, GENESIS.to_owned(), GENESIS.to_owned());
    loop {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org_id))
            .filter(audit_event::Column::Seq.gt(seq))
            .order_by_asc(audit_event::Column::Seq)
            .order_by_asc(audit_event::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?;
        let last_page = (rows.len() as u64) < PAGE;
        for mut row in rows {
            if row.seq != seq + 1 {
                return Ok(Some(ChainBreak::Missing { seq: seq + 1 }));
            }
            if row.prev_hash != old_prev {
                return Ok(Some(ChainBreak::OutOfOrder {
                    seq: row.seq,
                    id: row.id,
                }));
            }
            seq = row.seq;
            old_prev = row.hash.clone();
            new_prev = super::relink_row(db, &chain_key, &mut row, new_prev).await?;
        }
        if last_page {
            break;
        }
    }
    if (seq, old_prev.as_str()) != head {
        return Ok(Some(ChainBreak::Truncated {
            last_seq: seq,
            head_seq: head.0,
        }));
    }
    audit_chain_head::Entity::update_many()
        .col_expr(audit_chain_head::Column::Seq, Expr::value(seq))
        .col_expr(audit_chain_head::Column::Hash, Expr::value(new_prev))
        .col_expr(
            audit_chain_head::Column::KeyVersion,
            Expr::value(chain_key.version()),
        )
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .exec(db)
        .await?;
    Ok(None)
}
