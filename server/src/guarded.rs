//! The endpoints that check a secret (a password, an authenticator code, a backup or recovery
//! code) or run the password hasher for other reasons (hashing a new member's password,
//! digesting new codes), and whose account each one's attempts count against.
//!
//! The throttle (`throttle.rs`) limits exactly these. The integration test `brute_force`
//! reads the server functions in `app/src/api/` and fails when one that reaches argon2 is
//! not listed here.

/// Whose attempts a guarded request spends, besides its network address's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOf {
    /// The email typed at the first sign-in step: the password step guesses at it.
    RememberedEmail,
    /// The member who passed the password step and owes a second factor.
    PendingMember,
    /// The signed-in member.
    SignedInMember,
    /// No account yet: the first-run setup creates the first one. Counted per address only.
    NoAccount,
}

/// One guarded endpoint: a `POST` to `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarded {
    pub path: &'static str,
    pub account: AccountOf,
}

const fn guarded(path: &'static str, account: AccountOf) -> Guarded {
    Guarded { path, account }
}

/// Every endpoint that checks a secret or reaches argon2: the server functions (under
/// `/api/`) and the plain forms that post to their own page.
pub const GUARDED_PATHS: [Guarded; 13] = [
    // The sign-in steps.
    guarded("/api/sign_in/password", AccountOf::RememberedEmail),
    guarded("/api/sign_in/code", AccountOf::PendingMember),
    guarded("/api/sign_in/backup_code", AccountOf::PendingMember),
    // The password asked for again.
    guarded("/api/account/confirm", AccountOf::SignedInMember),
    guarded("/api/account/mfa/disable", AccountOf::SignedInMember),
    // An authenticator code that switches MFA on.
    guarded("/api/account/mfa/confirm", AccountOf::SignedInMember),
    // An authenticator code that puts a new authenticator in the old one's place.
    guarded(
        "/api/account/mfa/replace/confirm",
        AccountOf::SignedInMember,
    ),
    // New backup codes (the password again when it is not recent, and a digest per code),
    // from the hydrated app and from the plain form.
    guarded(
        "/api/account/backup-codes/generate",
        AccountOf::SignedInMember,
    ),
    guarded("/account/backup-codes", AccountOf::SignedInMember),
    // A new member's password hashed.
    guarded("/api/members/add", AccountOf::SignedInMember),
    // A recovery code made and digested, from the hydrated app and from the plain form.
    guarded("/api/admin/recovery/reveal", AccountOf::SignedInMember),
    guarded("/admin/recovery", AccountOf::SignedInMember),
    // The first owner's password hashed, at the one-time setup link.
    guarded("/api/setup/create", AccountOf::NoAccount),
];

/// Whose attempts a `POST` to `path` spends, when it is guarded.
pub fn account_of(path: &str) -> Option<AccountOf> {
    GUARDED_PATHS
        .iter()
        .find(|guarded| guarded.path == path)
        .map(|guarded| guarded.account)
}
