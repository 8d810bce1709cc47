//! SeaORM entities: the rows as the database holds them. Only this crate touches them.

pub mod organization;
pub mod user_account;
