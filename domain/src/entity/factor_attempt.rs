//! Sign-in attempts of one factor of one account from one source, reserved before they are
//! evaluated, and the factor's lock.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "factor_attempt")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i32,
    /// `password`, `totp` or `backup_code`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub factor: String,
    /// `` for every untrusted source; `device:<id>` for one browser with a device cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    /// Attempts reserved in the current window: wrong ones, and any still being evaluated.
    pub attempts: i32,
    /// When the current window's first attempt was reserved.
    pub window_started_at: Option<DateTimeUtc>,
    pub locked_until: Option<DateTimeUtc>,
    /// Locks since the last sign-in: each lasts twice as long as the one before.
    pub lockouts: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
