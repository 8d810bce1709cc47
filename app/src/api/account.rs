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
    /// to MFA settings after a backup-code sign-in, which the administration areas refuse).
    pub manages_members: bool,
    /// The administration areas the gate opens to them.
    pub may: Areas,
}

/// Which administration areas the gate opens to a member, one Casbin question each (see
/// `policies/policy.csv`); the administration bar shows exactly these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Areas {
    /// `members/list`: the members console.
    pub list_members: bool,
    /// `policy/view`: the policy, its history and the alerts.
    pub view_policy: bool,
    /// `recovery_code:member/issue`: sign-in codes for members.
    pub issue_recovery_codes: bool,
    /// `audit/view`: the audit log and the compliance report.
    pub view_audit: bool,
    /// `webhooks/manage`.
    pub manage_webhooks: bool,
    /// `api_tokens/manage`.
    pub manage_api_tokens: bool,
    /// `backups/request`: backups of the organization's data.
    pub request_backups: bool,
}

impl Areas {
    /// Whether any area is open.
    pub fn any(self) -> bool {
        let Self {
            list_members,
            view_policy,
            issue_recovery_codes,
            view_audit,
            manage_webhooks,
            manage_api_tokens,
            request_backups,
        } = self;
        list_members
            || view_policy
            || issue_recovery_codes
            || view_audit
            || manage_webhooks
            || manage_api_tokens
            || request_backups
    }

    /// What the gate answers for `member`.
    #[cfg(feature = "ssr")]
    pub async fn of(
        authz: &domain::authz::Authz,
        member: &domain::identity::Member,
    ) -> Result<Self, AppError> {
        use domain::{authz::Action, identity::Role};
        // One look at the rules' revision for every question.
        let gate = authz
            .refreshed()
            .await
            .map_err(|cause| AppError::Internal.logged("authorization", &cause))?;
        let asks = [
            Action::ListMembers,
            Action::ViewPolicy,
            Action::IssueRecoveryCode(Role::Member),
            Action::ViewAudit,
            Action::ManageWebhooks,
            Action::ManageApiTokens,
            Action::RequestBackups,
        ];
        let mut answers = [false; 7];
        for (answer, action) in answers.iter_mut().zip(asks) {
            *answer = gate
                .allows(member, member.org_id, action)
                .await
                .map_err(|cause| AppError::Internal.logged("authorization", &cause))?;
        }
        let [
            list_members,
            view_policy,
            issue_recovery_codes,
            view_audit,
            manage_webhooks,
            manage_api_tokens,
            request_backups,
        ] = answers;
        Ok(Self {
            list_members,
            view_policy,
            issue_recovery_codes,
            view_audit,
            manage_webhooks,
            manage_api_tokens,
            request_backups,
        })
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
        let may = Areas::of(&state.authz, &member).await?;
        Ok(Some(Account {
            email: member.email,
            role: member.role.as_str().to_owned(),
            organization: organization.name,
            mfa_enabled: member.mfa_enabled,
            manages_members: may.any() && !crate::auth::only_mfa_settings(&session).await?,
            may,
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
        // The key is a secret: no cache, shared or private, may keep this response.
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
        crate::auth::may_lift_only_mfa_settings(&state, &session).await?;
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
        crate::auth::set_only_mfa_settings(&session, false).await?;
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
