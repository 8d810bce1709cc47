//! Verifying a chain: walking it from a verified place, naming the first break, and
//! checking an event a checkpoint vouched for.

use std::collections::BTreeMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{GENESIS, Link};
use crate::{
    audit::keys::{self, ChainKey},
    entity::{audit_chain_head, audit_checkpoint, audit_event},
    secrets::{KeyVersion, SecretKey},
};

/// Where an organization's chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainBreak {
    /// The event's content no longer matches its link.
    Altered { seq: i64, id: i32 },
    /// The event that should come next is not there (deleted, or its number changed).
    Missing { seq: i64 },
    /// The event does not follow the one before it (moved, or one before it replaced).
    OutOfOrder { seq: i64, id: i32 },
    /// Events at the end of the chain are gone.
    Truncated { last_seq: i64, head_seq: i64 },
    /// The event carries a plain hash where a keyed link belongs: the chain was re-linked by
    /// someone without the key (or it was already broken when chains were keyed, and was left
    /// as it was: the break before it is then named instead).
    Unkeyed { seq: i64, id: i32 },
    /// The event is linked under an older key version than an event before it.
    OlderKey {
        seq: i64,
        id: i32,
        version: KeyVersion,
        after: KeyVersion,
    },
    /// The event names a key version the server's key does not hold.
    UnknownKey {
        seq: i64,
        id: i32,
        version: KeyVersion,
    },
    /// A signed checkpoint vouched for event `checkpoint_seq`, and the chain now ends before
    /// it: events were cut off and the head moved back.
    Cut { checkpoint_seq: i64, last_seq: i64 },
    /// Event `seq` is not the one a signed checkpoint vouched for.
    Rewritten { seq: i64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { seq, id } => write!(f, "event #{seq} (id {id}) was altered"),
            Self::Missing { seq } => write!(f, "event #{seq} is missing"),
            Self::OutOfOrder { seq, id } => write!(
                f,
                "event #{seq} (id {id}) does not follow the event before it"
            ),
            Self::Truncated { last_seq, head_seq } => write!(
                f,
                "events #{} to #{head_seq} are missing from the end",
                last_seq + 1
            ),
            Self::Unkeyed { seq, id } => write!(
                f,
                "event #{seq} (id {id}) carries a plain hash, not a link under the server's \
                 key: the chain was re-linked without the key"
            ),
            Self::OlderKey {
                seq,
                id,
                version,
                after,
            } => write!(
                f,
                "event #{seq} (id {id}) is linked under key version {version} after events \
                 under version {after}"
            ),
            Self::UnknownKey { seq, id, version } => write!(
                f,
                "event #{seq} (id {id}) names key version {version}, which the server's key \
                 does not hold"
            ),
            Self::Cut {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "event #{checkpoint_seq}, which a signed checkpoint vouched for, is gone: the \
                 log was cut back to #{last_seq}"
            ),
            Self::Rewritten { seq } => write!(
                f,
                "event #{seq} is not the one a signed checkpoint vouched for: the log was \
                 rewritten"
            ),
        }
    }
}

/// The state of an organization's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Events checked (those before the first break, when there is one).
    pub events: i64,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

/// Events read per query when walking a chain: memory stays constant however long it is.
pub(in crate::audit) const PAGE: u64 = 1000;

/// Walks the organization's chain from its first event under the installed key, and names
/// the first break; then checks the newest signed checkpoint stored for it (a cut below it or
/// a rewrite of the event it vouched for). Errors: no key installed, or the database's.
pub async fn verify(db: &impl ConnectionTrait, org_id: i32) -> Result<ChainState, DbErr> {
    Ok(verify_after(db, org_id, Place::genesis()).await?.0)
}

/// A verified place in a chain: the event `seq` (0: before the first), its link, and the key
/// version of the last keyed link up to it (`None`: none yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::audit) struct Place {
    pub(in crate::audit) seq: i64,
    pub(in crate::audit) hash: String,
    pub(in crate::audit) key_version: Option<KeyVersion>,
}

impl Place {
    pub(in crate::audit) fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
            key_version: None,
        }
    }

    /// The place of a stored event.
    pub(in crate::audit) fn of(row: &audit_event::Model) -> Self {
        Self {
            seq: row.seq,
            hash: row.hash.clone(),
            key_version: row.key_version,
        }
    }
}

/// The MAC keys met while walking one chain, derived once per version.
pub(in crate::audit) struct ChainKeys {
    secret: SecretKey,
    derived: BTreeMap<KeyVersion, Option<ChainKey>>,
}

impl ChainKeys {
    pub(in crate::audit) fn new(secret: SecretKey) -> Self {
        Self {
            secret,
            derived: BTreeMap::new(),
        }
    }

    fn get(&mut self, version: KeyVersion) -> Option<&ChainKey> {
        let secret = &self.secret;
        self.derived
            .entry(version)
            .or_insert_with(|| ChainKey::of(secret, version))
            .as_ref()
    }

    /// Whether `row`'s link matches its own content (its predecessor aside): the keyed MAC
    /// under its key version, or, for a plain link, its SHA-256. `Err`: the break that is.
    pub(in crate::audit) fn own_link(
        &mut self,
        row: &audit_event::Model,
    ) -> Result<(), ChainBreak> {
        let (seq, id) = (row.seq, row.id);
        let expected = match row.key_version {
            None => Link::of(row).hash(),
            Some(version) => self
                .get(version)
                .ok_or(ChainBreak::UnknownKey { seq, id, version })?
                .mac(&Link::of(row)),
        };
        // Constant time: the audit page verifies on every look, and a comparison that stops
        // at the first differing byte would help someone guess a link byte by byte.
        if bool::from(expected.as_bytes().ct_eq(row.hash.as_bytes())) {
            Ok(())
        } else {
            Err(ChainBreak::Altered { seq, id })
        }
    }

    /// The first break `row` makes as the event after `before`, if any. `Ok(true)`: it is a
    /// plain link that verifies as one (a break only if the chain ends plain; see
    /// [`verify_after`]).
    pub(in crate::audit) fn next_link(
        &mut self,
        before: &Place,
        row: &audit_event::Model,
    ) -> Result<bool, ChainBreak> {
        let (seq, id) = (row.seq, row.id);
        if seq != before.seq + 1 {
            return Err(ChainBreak::Missing {
                seq: before.seq + 1,
            });
        }
        match (before.key_version, row.key_version) {
            // After a keyed link, a plain one is a downgrade, however well it hashes.
            (Some(_), None) => return Err(ChainBreak::Unkeyed { seq, id }),
            (Some(after), Some(version)) if version < after => {
                return Err(ChainBreak::OlderKey {
                    seq,
                    id,
                    version,
                    after,
                });
            }
            _ => {}
        }
        self.own_link(row)?;
        if row.prev_hash != before.hash {
            return Err(ChainBreak::OutOfOrder { seq, id });
        }
        Ok(row.key_version.is_none())
    }
}

/// Walks the chain from the event after `start`, which was verified before, to the head;
/// returns the state (counting from the chain's start) and the last verified place.
///
/// Plain links verify as plain links so that a chain left plain because it was already
/// broken names that break; a chain with no other break but plain links is [`ChainBreak::
/// Unkeyed`] at its first plain link.
pub(in crate::audit) async fn verify_after(
    db: &impl ConnectionTrait,
    org_id: i32,
    start: Place,
) -> Result<(ChainState, Place), DbErr> {
    let mut keys = ChainKeys::new(keys::installed()?);
    let mut at = start;
    let mut first_plain: Option<(i64, i32)> = None;
    let done = |at: Place, broken| {
        Ok((
            ChainState {
                events: at.seq,
                broken,
            },
            at,
        ))
    };
    loop {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org_id))
            .filter(audit_event::Column::Seq.gt(at.seq))
            .order_by_asc(audit_event::Column::Seq)
            .order_by_asc(audit_event::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?;
        let last_page = (rows.len() as u64) < PAGE;
        for row in rows {
            match keys.next_link(&at, &row) {
                Err(broken) => return done(at, Some(broken)),
                Ok(plain) => {
                    if plain && first_plain.is_none() {
                        first_plain = Some((row.seq, row.id));
                    }
                    at = Place {
                        key_version: row.key_version.or(at.key_version),
                        ..Place::of(&row)
                    };
                }
            }
        }
        if last_page {
            break;
        }
    }
    let head = audit_chain_head::Entity::find_by_id(org_id).one(db).await?;
    if let Some(head) = head.filter(|head| head.seq != at.seq || head.hash != at.hash) {
        let broken = ChainBreak::Truncated {
            last_seq: at.seq,
            head_seq: head.seq,
        };
        return done(at, Some(broken));
    }
    if let Some(broken) = against_stored_checkpoint(db, org_id, &at, &keys.secret).await? {
        return done(at, Some(broken));
    }
    if let Some((seq, id)) = first_plain {
        let state = ChainState {
            events: seq - 1,
            broken: Some(ChainBreak::Unkeyed { seq, id }),
        };
        return Ok((state, at));
    }
    done(at, None)
}

/// The newest checkpoint stored for the organization whose signature holds, compared with
/// the chain that ends at `last`: a cut below it, or a different event where it vouched.
async fn against_stored_checkpoint(
    db: &impl ConnectionTrait,
    org_id: i32,
    last: &Place,
    secret: &SecretKey,
) -> Result<Option<ChainBreak>, DbErr> {
    let newest = audit_checkpoint::Entity::find()
        .filter(audit_checkpoint::Column::OrgId.eq(org_id))
        .order_by_desc(audit_checkpoint::Column::Seq)
        .order_by_desc(audit_checkpoint::Column::Id)
        .one(db)
        .await?;
    let Some(checkpoint) = newest else {
        return Ok(None);
    };
    if let Err(problem) =
        crate::audit::checkpoint::SignedCheckpoint::from(&checkpoint).check(secret)
    {
        // Not evidence either way: someone without the key wrote it. Say so, and go on.
        tracing::warn!(org_id, id = checkpoint.id, %problem, "a stored audit checkpoint");
        return Ok(None);
    }
    event_matches(db, org_id, checkpoint.seq, &checkpoint.hash, last).await
}

/// Whether event `seq` of the organization is still the one with link `hash`, in a chain
/// whose last event is `last`: `Cut` when the chain ends before it, `Rewritten` when it
/// differs.
pub(in crate::audit) async fn event_matches(
    db: &impl ConnectionTrait,
    org_id: i32,
    seq: i64,
    hash: &str,
    last: &Place,
) -> Result<Option<ChainBreak>, DbErr> {
    if seq == 0 {
        return Ok((hash != GENESIS).then_some(ChainBreak::Rewritten { seq }));
    }
    if seq > last.seq {
        return Ok(Some(ChainBreak::Cut {
            checkpoint_seq: seq,
            last_seq: last.seq,
        }));
    }
    let event = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(org_id))
        .filter(audit_event::Column::Seq.eq(seq))
        .one(db)
        .await?;
    Ok(match event {
        Some(event) if event.hash == hash => None,
        Some(_) => Some(ChainBreak::Rewritten { seq }),
        None => Some(ChainBreak::Cut {
            checkpoint_seq: seq,
            last_seq: last.seq,
        }),
    })
}
