//! Wrong attempts and locks of one sign-in factor of one account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "factor_lockout")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i32,
    /// `password`, `totp` or `backup_code`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub factor: String,
    /// Wrong attempts since the last success or lock.
    pub failures: i32,
    pub locked_until: Option<DateTimeUtc>,
    /// Locks since the last success: each lasts twice as long as the one before.
    pub lockouts: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
