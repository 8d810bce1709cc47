//! The alerts an organization's administrators get; no row means the defaults (all on).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "alert_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i32,
    pub issued_code: bool,
    pub privileged_backup_sign_in: bool,
    pub failed_redemptions: bool,
    pub failed_redemptions_count: i32,
    pub failed_redemptions_minutes: i32,
    pub lock: bool,
    pub policy_loosened: bool,
    pub incident: bool,
    /// Alerts kept for one message a day instead of sent at once.
    pub daily_digest: bool,
    pub saved_at: DateTimeUtc,
    pub saved_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
