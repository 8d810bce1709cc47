//! A signed checkpoint of an organization's audit chain: where its head stood, and when.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "audit_checkpoint")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub seq: i64,
    pub hash: String,
    pub at: DateTimeUtc,
    pub key_version: i32,
    /// Hex Ed25519 public key.
    pub public_key: String,
    /// Hex Ed25519 signature.
    pub signature: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
