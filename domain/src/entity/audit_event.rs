//! One security event of an organization's audit log.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub at: DateTimeUtc,
    pub actor_id: Option<i32>,
    pub actor: Option<String>,
    pub action: String,
    pub target_id: Option<i32>,
    pub target: Option<String>,
    pub outcome: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The secret key version whose derived MAC key made `hash`; `None`: a plain SHA-256
    /// link from before the chain was keyed.
    pub key_version: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
