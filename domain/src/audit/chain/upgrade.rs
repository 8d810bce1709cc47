//! Chains from before the key: re-linking plain SHA-256 chains under the key, once, by
//! the process that applies the keying migration.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::Expr,
};

use super::{ChainBreak, GENESIS, Link, PAGE, Place};
use crate::{
    audit::keys::ChainKey,
    entity::{audit_chain_head, audit_event},
};

/// The migration that gives events and heads their key versions.
const KEYING_MIGRATION: &str = "m20261129_000015_key_audit_chain";

/// Whether this database's chains are still from before the key, that is, whether the
/// migration that keys them is still to be applied. Ask before migrating; when true, run
/// [`upgrade_plain_chains`] once the migrations ran. Only then: later, a chain of plain links
/// is a downgrade by someone without the key, never a chain from before it, and re-linking
/// it would launder the forgery.
pub async fn chains_await_keying(db: &DatabaseConnection) -> Result<bool, DbErr> {
    use migrations::MigratorTrait;

    Ok(migrations::Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .any(|migration| migration.name() == KEYING_MIGRATION))
}

/// What [`upgrade_plain_chains`] did with one organization's plain chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainChain {
    /// Verified as a plain chain and re-linked under the key: `events` links.
    Keyed { org_id: i32, events: i64 },
    /// Did not verify as a plain chain, so it was left as it was.
    LeftBroken { org_id: i32, broken: ChainBreak },
}

/// Re-links, under the installed key's newest version, every chain still made of plain
/// SHA-256 links (those written before chains were keyed). Each chain is first verified as
/// the plain chain it is, in the same transaction that holds its head row and rewrites its
/// links, a page at a time (memory stays bounded however long it is). A chain that does not
/// verify is left as it was, so a break is never laundered into valid links; it is reported,
/// and [`verify`] keeps naming it.
///
/// Run at start-up, right after the migration that keys chains was applied
/// ([`chains_await_keying`]), and never otherwise: a chain of plain links met later was
/// downgraded by someone without the key, and [`verify`] must keep naming it. A chain another
/// process upgrades meanwhile is skipped. Errors: no key installed, or the database's.
pub async fn upgrade_plain_chains<C>(db: &C) -> Result<Vec<PlainChain>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let chain_key = ChainKey::installed_current()?;
    let plain: Vec<i32> = audit_chain_head::Entity::find()
        .filter(audit_chain_head::Column::KeyVersion.is_null())
        .order_by_asc(audit_chain_head::Column::OrgId)
        .all(db)
        .await?
        .into_iter()
        .map(|head| head.org_id)
        .collect();
    let mut outcomes = Vec::with_capacity(plain.len());
    for org_id in plain {
        if let Some(outcome) = upgrade_chain(db, org_id, &chain_key).await? {
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

/// One chain's upgrade (see [`upgrade_plain_chains`]); `None` when it is no longer plain.
async fn upgrade_chain<C>(
    db: &C,
    org_id: i32,
    chain_key: &ChainKey,
) -> Result<Option<PlainChain>, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    // Holds the head row (a row lock on PostgreSQL; SQLite has one writer) while the chain is
    // read and rewritten, so no append slips in between.
    let held = audit_chain_head::Entity::update_many()
        .col_expr(
            audit_chain_head::Column::Seq,
            Expr::col(audit_chain_head::Column::Seq).into(),
        )
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .filter(audit_chain_head::Column::KeyVersion.is_null())
        .exec(&txn)
        .await?;
    if held.rows_affected != 1 {
        return Ok(None);
    }
    let Some(head) = audit_chain_head::Entity::find_by_id(org_id)
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    let mut plain = Place::genesis();
    let mut keyed_prev = GENESIS.to_owned();
    loop {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org_id))
            .filter(audit_event::Column::Seq.gt(plain.seq))
            .order_by_asc(audit_event::Column::Seq)
            .order_by_asc(audit_event::Column::Id)
            .limit(PAGE)
            .all(&txn)
            .await?;
        let last_page = (rows.len() as u64) < PAGE;
        for mut row in rows {
            if let Some(broken) = plain_break(&plain, &row) {
                txn.rollback().await?;
                return Ok(Some(PlainChain::LeftBroken { org_id, broken }));
            }
            plain = Place::of(&row);
            keyed_prev = super::relink_row(&txn, chain_key, &mut row, keyed_prev).await?;
        }
        if last_page {
            break;
        }
    }
    if head.seq != plain.seq || head.hash != plain.hash {
        txn.rollback().await?;
        let broken = ChainBreak::Truncated {
            last_seq: plain.seq,
            head_seq: head.seq,
        };
        return Ok(Some(PlainChain::LeftBroken { org_id, broken }));
    }
    audit_chain_head::Entity::update_many()
        .col_expr(audit_chain_head::Column::Hash, Expr::value(keyed_prev))
        .col_expr(
            audit_chain_head::Column::KeyVersion,
            Expr::value(chain_key.version()),
        )
        .filter(audit_chain_head::Column::OrgId.eq(org_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(PlainChain::Keyed {
        org_id,
        events: plain.seq,
    }))
}

/// The break `row` makes as the plain event after `before` in a chain from before the key,
/// if any (the rules of the plain chains, for their upgrade).
fn plain_break(before: &Place, row: &audit_event::Model) -> Option<ChainBreak> {
    let (seq, id) = (row.seq, row.id);
    if seq != before.seq + 1 {
        Some(ChainBreak::Missing {
            seq: before.seq + 1,
        })
    } else if row.key_version.is_some() || Link::of(row).hash() != row.hash {
        // A keyed link inside a plain chain was not written by the upgrade.
        Some(ChainBreak::Altered { seq, id })
    } else if row.prev_hash != before.hash {
        Some(ChainBreak::OutOfOrder { seq, id })
    } else {
        None
    }
}
