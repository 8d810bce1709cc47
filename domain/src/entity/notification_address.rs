//! A member's second address for security notifications.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "notification_address")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Unique: one second address per member.
    #[sea_orm(unique)]
    pub user_id: i32,
    pub email: String,
    /// SHA-256 of the verification link's token, hex.
    #[sea_orm(unique)]
    pub token_digest: String,
    pub created_at: DateTimeUtc,
    /// Set when the link sent to the address was followed; only then does it get mail.
    pub verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
