//! The routed pages.

mod account;
mod admin;
mod alerts;
mod api_tokens;
mod audit;
mod backup;
mod backup_codes;
pub(crate) mod compliance;
mod home;
mod members;
mod not_found;
mod not_me;
mod notifications;
mod policy;
mod recovery;
mod setup;
mod sign_in;
mod webhooks;

pub use account::{AccountPage, ConfirmPage, MfaReplacePage, MfaSetupPage};
pub use admin::AdminHomePage;
pub use alerts::AlertsPage;
pub use api_tokens::ApiTokensPage;
pub use audit::AuditPage;
pub use backup::BackupPage;
pub use backup_codes::{BackupCodesPage, RecoveredPage, SignInBackupCode};
pub use compliance::CompliancePage;
pub use home::HomePage;
pub use members::MembersPage;
pub use not_found::NotFound;
pub use not_me::{NotMePage, NotMeReportedPage};
pub use notifications::{AddressVerifiedPage, NotificationsPage, UnreadBadge, VerifyAddressPage};
pub use policy::PolicyPage;
pub use recovery::RecoveryPage;
pub use setup::SetupPage;
pub use sign_in::{SignInEmail, SignInHelp, SignInPassword, SignInVerify};
pub use webhooks::WebhooksPage;
