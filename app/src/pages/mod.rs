//! The routed pages.

mod account;
mod audit;
mod backup_codes;
mod compliance;
mod home;
mod members;
mod not_found;
mod policy;
mod recovery;
mod sign_in;

pub use account::{AccountPage, ConfirmPage, MfaSetupPage};
pub use audit::AuditPage;
pub use backup_codes::{BackupCodesPage, RecoveredPage, SignInBackupCode};
pub use compliance::CompliancePage;
pub use home::HomePage;
pub use members::MembersPage;
pub use not_found::NotFound;
pub use policy::PolicyPage;
pub use recovery::RecoveryPage;
pub use sign_in::{SignInEmail, SignInHelp, SignInPassword, SignInVerify};
