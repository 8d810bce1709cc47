//! An organization's webhook: where its audit events are POSTed, signed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub name: String,
    /// `https://…` (or `http://` to a loopback address where the operator allows it).
    pub url: String,
    /// The signing secret, sealed with the server key under `key_version`.
    pub secret: Vec<u8>,
    pub key_version: i32,
    /// A JSON array of event families (`backup_code`, `mfa`, …); empty: every event.
    pub events: String,
    pub created_at: DateTimeUtc,
    /// The email of the owner who registered it.
    pub created_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
