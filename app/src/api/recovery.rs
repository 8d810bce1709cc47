//! Recovery codes that owners and admins issue for members who lost both their
//! authenticator and their backup codes: requesting, approving (two-admin approval) and
//! revealing, once.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One request, as the recovery page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRequestView {
    pub id: i32,
    pub member_email: String,
    pub requested_by: String,
    pub requested_at: String,
    pub approved_by: Option<String>,
    pub expires_at: String,
    /// Where it stands, in words.
    pub state: String,
    /// The viewer may approve it (a second admin, under two-admin approval).
    pub can_approve: bool,
    /// The viewer may reveal it (its requester, once approved).
    pub can_reveal: bool,
}

/// The recovery page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryOverview {
    /// The policy asks a second admin to approve each code.
    pub approval_required: bool,
    /// Approval was turned off and still binds until then (`28 Nov 2026, 09:15 UTC`).
    pub approval_ends_at: Option<String>,
    /// Open requests, newest first.
    pub requests: Vec<RecoveryRequestView>,
}

/// What the plain "Reveal" form posts to `/admin/recovery`; the server renders that page
/// with it in context, and the page reveals the code from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealForm {
    pub request_id: i32,
}

/// A recovery code, shown this once to the admin who requested it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedCode {
    pub member_email: String,
    /// Grouped for reading: `4821 0937 5516`.
    pub code: String,
    pub expires_at: String,
}

/// The organization's open recovery-code requests, for owners and admins.
#[server(endpoint = "admin/recovery")]
pub async fn get_recovery_overview() -> Result<RecoveryOverview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let now = chrono::Utc::now();
        let requests =
            domain::recovery_codes::open_requests(&state.db, &state.authz, &member, now).await?;
        let approval =
            domain::org_policy::two_admin_approval(&state.db, member.org_id, now).await?;
        use domain::recovery_codes::RecoveryState as S;
        Ok(RecoveryOverview {
            approval_required: approval.required,
            approval_ends_at: approval.ends_at.map(crate::api::readable_time),
            requests: requests
                .into_iter()
                .map(|r| {
                    let mine = r.requested_by_id == Some(member.id);
                    RecoveryRequestView {
                        id: r.id,
                        state: match r.state {
                            S::AwaitingApproval => "Waiting for a second admin's approval",
                            S::ReadyToReveal => "Approved: ready to reveal",
                            S::Revealed => "Revealed: waiting for the member to use it",
                            S::Used => "Used",
                            S::Ended => "Ended",
                        }
                        .to_owned(),
                        // The domain refuses the rest with its reason; these are the
                        // buttons worth showing.
                        can_approve: r.state == S::AwaitingApproval
                            && !mine
                            && r.member_id != member.id
                            && member.mfa_enabled,
                        can_reveal: r.state == S::ReadyToReveal && mine,
                        member_email: r.member_email,
                        requested_by: r.requested_by,
                        requested_at: crate::api::readable_time(r.requested_at),
                        approved_by: r.approved_by,
                        expires_at: crate::api::readable_time(r.expires_at),
                    }
                })
                .collect(),
        })
    })
    .await
}

/// Requests a recovery code for the member with `email`.
#[server(endpoint = "admin/recovery/request")]
pub async fn request_recovery_code(email: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::recovery_codes::request(&crate::auth::command(&state, &member, &source), &email)
            .await?;
        leptos_axum::redirect("/admin/recovery");
        Ok(())
    })
    .await
}

/// Approves another admin's request.
#[server(endpoint = "admin/recovery/approve")]
pub async fn approve_recovery_code(request_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::recovery_codes::approve(
            &crate::auth::command(&state, &member, &source),
            request_id,
        )
        .await?;
        leptos_axum::redirect("/admin/recovery");
        Ok(())
    })
    .await
}

/// Cancels an open request, whatever its step: the code (if revealed) stops working at once,
/// and no other is issued.
#[server(endpoint = "admin/recovery/cancel")]
pub async fn cancel_recovery_code(request_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::recovery_codes::cancel(&crate::auth::command(&state, &member, &source), request_id)
            .await?;
        leptos_axum::redirect("/admin/recovery");
        Ok(())
    })
    .await
}

/// Reveals the code of the viewer's approved request, this once.
#[server(endpoint = "admin/recovery/reveal")]
pub async fn reveal_recovery_code(request_id: i32) -> Result<RevealedCode, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let (request, code) = domain::recovery_codes::reveal(
            &crate::auth::command(&state, &member, &source),
            &state.codes,
            request_id,
        )
        .await?;
        // The code is in this answer: no cache, shared or private, may keep it.
        crate::api::no_store();
        tracing::info!(
            admin = member.id,
            member = request.member_id,
            "revealed a recovery code"
        );
        Ok(RevealedCode {
            member_email: request.member_email,
            code: code.grouped(),
            expires_at: crate::api::readable_time(request.expires_at),
        })
    })
    .await
}
