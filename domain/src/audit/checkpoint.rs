//! Signed checkpoints of an organization's audit chain: an Ed25519 signature, under a key
//! derived from the server's secret key ([`super::keys`]), over the organization, the event
//! number and link of the chain's head, and the time.
//!
//! Checkpoints are stored in the database (the server signs each chain whose head moved at
//! an interval, [`sign_moved_chains`]; `lifeline audit checkpoint` signs one on demand,
//! [`sign`]) and are meant to be copied out of it: an auditor who holds one can later check
//! the log against it ([`verify_against`]). A database writer without the key can delete or
//! change the stored ones, but cannot make a signature, and cannot change the copy the
//! auditor holds: cutting events off the end, or rewriting the chain up to the checkpoint's
//! event, then shows. Someone holding the server's key can forge links and checkpoints alike;
//! a checkpoint signed before that and kept outside still shows a rewrite of what it covers.

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use serde::{Deserialize, Serialize};

use super::{
    chain::{self, ChainBreak, ChainState, Place},
    keys,
};
use crate::{
    entity::{audit_chain_head, audit_checkpoint, audit_event},
    secrets::{KeyVersion, SecretKey},
};

/// The `format` of checkpoints this build writes and reads.
pub const FORMAT: &str = "lifeline-audit-checkpoint/v1";

/// A signed checkpoint, as stored and as exported (JSON).
///
/// The signature covers [`FORMAT`], `org_id`, `seq`, `hash`, `at` (RFC 3339, microseconds)
/// and `key_version`, as the JSON array [`SignedCheckpoint::message`] makes; `org` (the slug)
/// is a label for people and is not signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// [`FORMAT`].
    pub format: String,
    /// The organization's slug (`--org`), for people; empty for a checkpoint read from the
    /// database.
    #[serde(default)]
    pub org: String,
    pub org_id: i32,
    /// The number of the chain's last event when signed (0: no events yet).
    pub seq: i64,
    /// That event's link (hex).
    pub hash: String,
    /// When it was signed, to the microsecond.
    pub at: DateTime<Utc>,
    /// The version of the server's key whose derived Ed25519 key signed it.
    pub key_version: KeyVersion,
    /// The Ed25519 public key (hex, 32 bytes) that verifies `signature`.
    pub public_key: String,
    /// The Ed25519 signature (hex, 64 bytes).
    pub signature: String,
}

/// Why a checkpoint could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The text is not a checkpoint this build reads.
    #[error("not a Lifeline audit checkpoint: {0}")]
    Format(String),
    /// The signature does not verify under the checkpoint's public key: it was altered.
    #[error("the checkpoint's signature does not verify: it was altered after signing")]
    BadSignature,
    /// The signature verifies, but under a key this installation did not derive.
    #[error(
        "the checkpoint was not signed by this installation's key (version {0}): its public \
         key differs"
    )]
    NotThisKey(KeyVersion),
    /// The key version that signed it is not in the server's key.
    #[error("the checkpoint names key version {0}, which the server's key does not hold")]
    UnknownKeyVersion(KeyVersion),
    /// It is another organization's.
    #[error("the checkpoint is of another organization (id {checkpoint}, not {org})")]
    OtherOrganization { checkpoint: i32, org: i32 },
    /// The chain does not verify, so its head is not signed.
    #[error("the audit log is broken, so no checkpoint was signed: {0}")]
    Broken(ChainBreak),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl SignedCheckpoint {
    /// The bytes signed: `["lifeline-audit-checkpoint/v1", org_id, seq, hash, at, key_version]`
    /// as compact JSON.
    pub fn message(
        org_id: i32,
        seq: i64,
        hash: &str,
        at: DateTime<Utc>,
        key_version: KeyVersion,
    ) -> Vec<u8> {
        serde_json::json!([
            FORMAT,
            org_id,
            seq,
            hash,
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            key_version
        ])
        .to_string()
        .into_bytes()
    }

    /// Reads an exported checkpoint. Errors: not JSON of this shape, or another format.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let checkpoint: Self =
            serde_json::from_str(text).map_err(|e| CheckpointError::Format(e.to_string()))?;
        if checkpoint.format != FORMAT {
            return Err(CheckpointError::Format(format!(
                "format {:?}, expected {FORMAT:?}",
                checkpoint.format
            )));
        }
        Ok(checkpoint)
    }

    /// Checks that the signature verifies under the checkpoint's public key, and that this
    /// public key is the one `secret` derives for the checkpoint's key version (so a
    /// checkpoint someone signed with a key of their own is refused).
    pub fn check(&self, secret: &SecretKey) -> Result<(), CheckpointError> {
        let public = self.check_signature()?;
        let ours = keys::signing_key(secret, self.key_version)
            .ok_or(CheckpointError::UnknownKeyVersion(self.key_version))?;
        if ours.verifying_key() != public {
            return Err(CheckpointError::NotThisKey(self.key_version));
        }
        Ok(())
    }

    /// Checks that the signature verifies under the checkpoint's own public key (whoever's
    /// that is), and returns the key. [`Self::check`] also asks that it be this
    /// installation's.
    pub fn check_signature(&self) -> Result<VerifyingKey, CheckpointError> {
        let public: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(CheckpointError::BadSignature)?;
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(CheckpointError::BadSignature)?;
        let public =
            VerifyingKey::from_bytes(&public).map_err(|_| CheckpointError::BadSignature)?;
        let message = Self::message(self.org_id, self.seq, &self.hash, self.at, self.key_version);
        public
            .verify_strict(&message, &Signature::from_bytes(&signature))
            .map_err(|_| CheckpointError::BadSignature)?;
        Ok(public)
    }
}

impl From<&audit_checkpoint::Model> for SignedCheckpoint {
    fn from(row: &audit_checkpoint::Model) -> Self {
        Self {
            format: FORMAT.to_owned(),
            org: String::new(),
            org_id: row.org_id,
            seq: row.seq,
            hash: row.hash.clone(),
            at: row.at,
            key_version: row.key_version,
            public_key: row.public_key.clone(),
            signature: row.signature.clone(),
        }
    }
}

/// Verifies the organization's whole chain and, when it holds, signs and stores a checkpoint
/// of the place it ends, under the installed key's newest version, at `at`. `org` is the
/// slug put on the checkpoint for people. Errors: the chain is broken (nothing is signed), no
/// key is installed, or the database's.
pub async fn sign(
    db: &impl ConnectionTrait,
    org_id: i32,
    org: &str,
    at: DateTime<Utc>,
) -> Result<SignedCheckpoint, CheckpointError> {
    let (state, end) = chain::verify_after(db, org_id, Place::genesis()).await?;
    if let Some(broken) = state.broken {
        return Err(CheckpointError::Broken(broken));
    }
    let mut checkpoint = store(db, org_id, &end, at).await?;
    org.clone_into(&mut checkpoint.org);
    Ok(checkpoint)
}

/// Signs and stores a checkpoint of each chain whose head moved since its newest checkpoint,
/// verifying only the events after that checkpoint (when its signature holds and its event is
/// still the one it vouched for; otherwise the whole chain). A chain that does not verify is
/// not signed; it is logged, and [`chain::verify`] names its break. Returns how many were
/// signed. Every instance may run it; two at once may sign the same head twice, which is
/// harmless. Errors: no key installed, or the database's.
pub async fn sign_moved_chains(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let secret = keys::installed()?;
    let heads = audit_chain_head::Entity::find()
        .filter(audit_chain_head::Column::Seq.gt(0))
        .order_by_asc(audit_chain_head::Column::OrgId)
        .all(db)
        .await?;
    let mut signed = 0;
    for head in heads {
        let newest = audit_checkpoint::Entity::find()
            .filter(audit_checkpoint::Column::OrgId.eq(head.org_id))
            .order_by_desc(audit_checkpoint::Column::Seq)
            .order_by_desc(audit_checkpoint::Column::Id)
            .one(db)
            .await?;
        if newest.as_ref().is_some_and(|c| c.seq == head.seq) {
            continue;
        }
        let start = match &newest {
            Some(checkpoint) => verified_start(db, &secret, checkpoint).await?,
            None => Place::genesis(),
        };
        let (state, end) = chain::verify_after(db, head.org_id, start).await?;
        if let Some(broken) = state.broken {
            tracing::warn!(org_id = head.org_id, %broken, "audit chain not checkpointed");
            continue;
        }
        store(db, head.org_id, &end, now).await?;
        signed += 1;
    }
    Ok(signed)
}

/// Where to resume verifying after `checkpoint`: its event, when the signature holds and the
/// event is still the one it signed; otherwise the chain's start.
async fn verified_start(
    db: &impl ConnectionTrait,
    secret: &SecretKey,
    checkpoint: &audit_checkpoint::Model,
) -> Result<Place, DbErr> {
    if SignedCheckpoint::from(checkpoint).check(secret).is_err() {
        return Ok(Place::genesis());
    }
    let event = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(checkpoint.org_id))
        .filter(audit_event::Column::Seq.eq(checkpoint.seq))
        .one(db)
        .await?;
    Ok(match event {
        Some(event) if event.hash == checkpoint.hash => Place::of(&event),
        _ => Place::genesis(),
    })
}

/// Verifies the organization's whole chain and, when it holds, signs the place it ends at
/// `at` under the installed key's newest version without storing it: for a backup, whose
/// snapshot transaction writes nothing. Errors: as [`sign`].
pub async fn sign_unstored(
    db: &impl ConnectionTrait,
    org_id: i32,
    at: DateTime<Utc>,
) -> Result<SignedCheckpoint, CheckpointError> {
    let (state, end) = chain::verify_after(db, org_id, Place::genesis()).await?;
    if let Some(broken) = state.broken {
        return Err(CheckpointError::Broken(broken));
    }
    Ok(signed(org_id, &end, at)?)
}

/// Signs `place` of the organization's chain at `at` under the installed key's newest
/// version.
fn signed(org_id: i32, place: &Place, at: DateTime<Utc>) -> Result<SignedCheckpoint, DbErr> {
    let secret = keys::installed()?;
    let version = secret.current_version();
    let signing = keys::signing_key(&secret, version)
        .ok_or_else(|| DbErr::Custom(format!("the secret key does not hold version {version}")))?;
    // Microseconds: what both databases keep, so the signature verifies after a round trip.
    let at = at.trunc_subsecs(6);
    let message = SignedCheckpoint::message(org_id, place.seq, &place.hash, at, version);
    Ok(SignedCheckpoint {
        format: FORMAT.to_owned(),
        org: String::new(),
        org_id,
        seq: place.seq,
        hash: place.hash.clone(),
        at,
        key_version: version,
        public_key: hex::encode(signing.verifying_key().as_bytes()),
        signature: hex::encode(signing.sign(&message).to_bytes()),
    })
}

/// Signs `place` of the organization's chain at `at` and stores the checkpoint.
async fn store(
    db: &impl ConnectionTrait,
    org_id: i32,
    place: &Place,
    at: DateTime<Utc>,
) -> Result<SignedCheckpoint, DbErr> {
    let checkpoint = signed(org_id, place, at)?;
    audit_checkpoint::ActiveModel {
        org_id: Set(org_id),
        seq: Set(checkpoint.seq),
        hash: Set(checkpoint.hash.clone()),
        at: Set(checkpoint.at),
        key_version: Set(checkpoint.key_version),
        public_key: Set(checkpoint.public_key.clone()),
        signature: Set(checkpoint.signature.clone()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(checkpoint)
}

/// Checks the organization's log against a checkpoint held outside the database: the
/// signature (made by this installation's key), then the whole chain ([`chain::verify`]),
/// then that the event the checkpoint vouched for is still there with the link it signed.
/// A chain cut back below the checkpoint is [`ChainBreak::Cut`] even when the head was moved
/// back to match; a different event there is [`ChainBreak::Rewritten`].
///
/// Errors: the checkpoint's signature or organization is wrong (the log was not checked), no
/// key is installed, or the database's.
pub async fn verify_against(
    db: &impl ConnectionTrait,
    org_id: i32,
    checkpoint: &SignedCheckpoint,
) -> Result<ChainState, CheckpointError> {
    checkpoint.check(&keys::installed()?)?;
    if checkpoint.org_id != org_id {
        return Err(CheckpointError::OtherOrganization {
            checkpoint: checkpoint.org_id,
            org: org_id,
        });
    }
    let (state, end) = chain::verify_after(db, org_id, Place::genesis()).await?;
    if state.broken.is_some() {
        return Ok(state);
    }
    let broken = chain::event_matches(db, org_id, checkpoint.seq, &checkpoint.hash, &end).await?;
    Ok(ChainState {
        events: state.events,
        broken,
    })
}
