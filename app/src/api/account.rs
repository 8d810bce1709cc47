//! The signed-in member's own account: who they are, and their authenticator (TOTP).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The signed-in member, as the account panel shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub email: String,
    /// `owner`, `admin`, `helpdesk`, `auditor` or `member`.
    pub role: String,
    pub organization: String,
    pub mfa_enabled: bool,
    /// The gate opens at least one administration area to them (never to a session limited
    /// to MFA settings, after a backup-code sign-in or past "Required"'s deadline, which the
    /// administration areas refuse).
    pub manages_members: bool,
    /// The administration areas the gate opens to them ([`Area::ALL`]'s order).
    pub may: Vec<Area>,
    /// "Required" asks them for backup codes by a date that has not come yet: the countdown
    /// every page shows.
    pub codes_due: Option<CodesDue>,
}

/// A deadline to generate backup codes under "Required", ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodesDue {
    /// When, as people read it.
    pub by: String,
    /// Whole days left, rounded up (the last day reads 1).
    pub days_left: u32,
}

/// An administration area as the gate opens it: one Casbin question each (see
/// `policies/policy.csv`). The administration bar shows exactly the areas a member may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Area {
    /// `members/list`: the members console.
    ListMembers,
    /// `policy/view`: the policy, its history and the alerts.
    ViewPolicy,
    /// `recovery_code:member/issue`: sign-in codes for members.
    IssueRecoveryCodes,
    /// `audit/view`: the audit log and the compliance report.
    ViewAudit,
    /// `webhooks/manage`.
    ManageWebhooks,
    /// `api_tokens/manage`.
    ManageApiTokens,
    /// `backups/request`: backups of the organization's data.
    RequestBackups,
}

impl Area {
    /// Every area. A new one joins here and in [`Area::action`].
    pub const ALL: [Self; 7] = [
        Self::ListMembers,
        Self::ViewPolicy,
        Self::IssueRecoveryCodes,
        Self::ViewAudit,
        Self::ManageWebhooks,
        Self::ManageApiTokens,
        Self::RequestBackups,
    ];

    /// The gate's question for it.
    #[cfg(feature = "ssr")]
    fn action(self) -> domain::authz::Action {
        use domain::{authz::Action, identity::Role};
        match self {
            Self::ListMembers => Action::ListMembers,
            Self::ViewPolicy => Action::ViewPolicy,
            Self::IssueRecoveryCodes => Action::IssueRecoveryCode(Role::Member),
            Self::ViewAudit => Action::ViewAudit,
            Self::ManageWebhooks => Action::ManageWebhooks,
            Self::ManageApiTokens => Action::ManageApiTokens,
            Self::RequestBackups => Action::RequestBackups,
        }
    }

    /// The areas the gate opens to `member`, asked on one look at the rules' revision.
    #[cfg(feature = "ssr")]
    pub async fn open_to(
        authz: &domain::authz::Authz,
        member: &domain::identity::Member,
    ) -> Result<Vec<Self>, AppError> {
        let denied =
            |cause: domain::authz::PolicyError| AppError::Internal.logged("authorization", &cause);
        let gate = authz.refreshed().await.map_err(denied)?;
        let mut open = Vec::new();
        for area in Self::ALL {
            if gate
                .allows(member, member.org_id, area.action())
                .await
                .map_err(denied)?
            {
                open.push(area);
            }
        }
        Ok(open)
    }
}

/// What the set-up page shows while an authenticator is being added: the QR code and the
/// same key as text. Never sent once MFA is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpSetup {
    /// The key grouped in fours for typing into an authenticator app.
    pub setup_key: String,
    /// An SVG image of the QR code that encodes the `otpauth://` URL.
    pub qr_svg: String,
}

/// The signed-in member, or `None` when nobody is signed in.
#[server(endpoint = "account")]
pub async fn current_account() -> Result<Option<Account>, AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let session = crate::auth::session().await?;
        let Some(member) = crate::auth::current_member(&state, &session).await? else {
            return Ok(None);
        };
        let organization = domain::accounts::organization(&state.db, member.org_id).await?;
        let may = Area::open_to(&state.authz, &member).await?;
        let deadline = crate::auth::deadline_of(&state, &member).await?;
        let limited = crate::auth::session_limit(&session).await?.is_some()
            || crate::auth::codes_required(&deadline).is_some();
        let codes_due = match deadline {
            Some(domain::org_policy::grace::Deadline::Ahead { at, days_left }) => Some(CodesDue {
                by: crate::api::readable_time(at),
                days_left,
            }),
            _ => None,
        };
        Ok(Some(Account {
            email: member.email,
            role: member.role.as_str().to_owned(),
            organization: organization.name,
            mfa_enabled: member.mfa_enabled,
            manages_members: !may.is_empty() && !limited,
            may,
            codes_due,
        }))
    })
    .await
}

/// The authenticator being set up (started on first call), for the set-up page.
#[server(endpoint = "account/mfa/setup")]
pub async fn get_totp_setup() -> Result<TotpSetup, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let enrolment =
            domain::mfa::current_enrolment(&state.db, &state.secret_key, member.id).await?;
        setup_page(&enrolment)
    })
    .await
}

/// What the set-up page shows of `enrolment`: the key grouped for typing and its QR code.
/// The key is a secret: no cache, shared or private, may keep the response.
#[cfg(feature = "ssr")]
fn setup_page(enrolment: &domain::mfa::TotpEnrolment) -> Result<TotpSetup, AppError> {
    crate::api::no_store();
    let qr_svg = qrcode::QrCode::new(enrolment.otpauth_url.as_bytes())
        .map_err(|cause| AppError::Internal.logged("QR code", &cause))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(TotpSetup {
        setup_key: group_in_fours(&enrolment.setup_key),
        qr_svg,
    })
}

/// The new authenticator being set up while MFA stays on, for moving to a new phone: the
/// old authenticator (and backup codes) still sign in until a code from the new one
/// confirms it ([`confirm_totp_replacement`]). Needs the password typed within the
/// re-authentication window: the key is a secret, and it changes how the account is
/// protected. Errors: `ReauthenticationRequired`; MFA off (set it up instead).
#[server(endpoint = "account/mfa/replace")]
pub async fn get_totp_replacement() -> Result<TotpSetup, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::sensitive_change().await?;
        let enrolment =
            domain::mfa::current_replacement(&state.db, &state.secret_key, member.id).await?;
        setup_page(&enrolment)
    })
    .await
}

/// Puts the new authenticator in the old one's place once `code` from it proves it works;
/// the backup codes stay when `keep_codes` is ticked (the form ticks it), else they end.
/// Like a first authenticator, it lifts the limit to MFA settings after a backup-code
/// sign-in (not a new set owed). Needs the password typed within the re-authentication
/// window.
#[server(endpoint = "account/mfa/replace/confirm")]
pub async fn confirm_totp_replacement(
    code: String,
    keep_codes: Option<String>,
) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            session,
            member,
            source,
        } = crate::auth::sensitive_change().await?;
        let keep_codes = keep_codes.is_some_and(|ticked| !ticked.is_empty());
        domain::mfa::confirm_replacement(
            &state.db,
            &state.secret_key,
            member.id,
            &code,
            keep_codes,
            &source,
            chrono::Utc::now(),
        )
        .await?;
        crate::auth::lift_session_limit(&session, crate::auth::Secured::NewAuthenticator).await?;
        tracing::info!(member = member.id, keep_codes, "authenticator replaced");
        leptos_axum::redirect("/account?authenticator=replaced");
        Ok(())
    })
    .await
}

/// Switches MFA on once the member proves the authenticator works with a current code.
#[server(endpoint = "account/mfa/confirm")]
pub async fn confirm_totp(code: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            session,
            member,
            ..
        } = crate::auth::signed_in().await?;
        // A new authenticator lifts the limit to MFA settings below: only once the password
        // was typed again since the sign-in with a backup code, which this asks for first.
        crate::auth::may_lift_session_limit(&state, &session).await?;
        domain::mfa::confirm_enrolment(
            &state.db,
            &state.secret_key,
            member.id,
            &code,
            &crate::auth::request_source(),
            chrono::Utc::now(),
        )
        .await?;
        // A new authenticator secures the account again after a sign-in with a backup code.
        crate::auth::lift_session_limit(&session, crate::auth::Secured::NewAuthenticator).await?;
        tracing::info!(member = member.id, "multi-factor authentication turned on");
        leptos_axum::redirect("/account");
        Ok(())
    })
    .await
}

/// Switches MFA off after the member types their password again.
#[server(endpoint = "account/mfa/disable")]
pub async fn disable_totp(password: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        if password.is_empty() {
            return Err(AppError::Invalid {
                field: "password".into(),
                message: "Enter your password to turn multi-factor authentication off.".into(),
            });
        }
        let password = domain::secrets::Password::new(password);
        domain::mfa::disable(
            &state.db,
            &state.hasher,
            member.id,
            &password,
            &crate::auth::request_source(),
            chrono::Utc::now(),
        )
        .await?;
        tracing::info!(member = member.id, "multi-factor authentication turned off");
        leptos_axum::redirect("/account");
        Ok(())
    })
    .await
}

/// Proves again who the signed-in member is, with their password, before administrator
/// changes (which ask for it after the re-authentication window); then back to `next`.
#[server(endpoint = "account/confirm")]
pub async fn confirm_its_you(password: String, next: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            session,
            member,
            ..
        } = crate::auth::signed_in().await?;
        crate::auth::confirm_recent_authentication(&state, &session, &member, Some(&password))
            .await?;
        leptos_axum::redirect(&crate::auth::local_path(&next));
        Ok(())
    })
    .await
}

/// `JBSWY3DPEHPK3PXP…` → `JBSW Y3DP EHPK 3PXP …`: easier to read and type.
#[cfg(feature = "ssr")]
fn group_in_fours(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
