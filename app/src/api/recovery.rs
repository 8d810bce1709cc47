//! Recovery codes that owners, admins and the help desk issue for members who lost both
//! their authenticator and their backup codes: requesting (a lifetime, a start and uses
//! within the organization's rules), approving (two-admin approval) and revealing, once.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One code, as the recovery page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRequestView {
    pub id: i32,
    pub member_email: String,
    pub requested_by: String,
    pub requested_at: String,
    pub approved_by: Option<String>,
    pub starts_at: String,
    pub expires_at: String,
    /// `One-time`, or `1 of 3 used`.
    pub uses: String,
    /// Where it stands, in a word or two (`Active`, `Not valid yet`, `Expired`…).
    pub state: String,
    /// Why it does or does not work now, in a sentence.
    pub reason: String,
    /// It may still work, or be approved or revealed: it can be cancelled.
    pub open: bool,
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
    /// The policy has recovery codes off: nobody may issue one, and issued ones do not work.
    pub codes_off: bool,
    /// The lifetimes the policy allows, in words: `from 1 hour to 1 day`.
    pub lifetimes: String,
    /// The default lifetime as the form types it: `24h`.
    pub default_lifetime: String,
    /// The most uses one code may have (1: one-time codes only).
    pub max_uses: u8,
    /// Codes that may still work and those that stopped lately, newest first.
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
    /// When and how often it works, in a sentence.
    pub terms: String,
}

/// The organization's recent recovery codes and its rules for them, for those who may issue
/// codes.
#[server(endpoint = "admin/recovery")]
pub async fn get_recovery_overview() -> Result<RecoveryOverview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let now = chrono::Utc::now();
        let requests =
            domain::recovery_codes::recent(&state.db, &state.authz, &member, now).await?;
        let approval =
            domain::org_policy::two_admin_approval(&state.db, member.org_id, now).await?;
        let rules = domain::org_policy::current(&state.db, member.org_id)
            .await?
            .policy
            .recovery_codes;
        use domain::{org_policy::issued_codes as rules_of, recovery_codes::RecoveryState as S};
        Ok(RecoveryOverview {
            approval_required: approval.required,
            approval_ends_at: approval.ends_at.map(crate::api::readable_time),
            codes_off: !rules.issuers.codes_on(),
            lifetimes: format!(
                "from {} to {}",
                rules_of::minutes_words(rules.shortest_minutes),
                rules_of::minutes_words(rules.longest_minutes)
            ),
            default_lifetime: rules_of::minutes_text(rules.default_minutes),
            max_uses: rules.max_uses,
            requests: requests
                .into_iter()
                .map(|r| {
                    let mine = r.requested_by_id == Some(member.id);
                    RecoveryRequestView {
                        id: r.id,
                        reason: r.reason(),
                        state: match r.state {
                            S::AwaitingApproval => "Awaiting approval",
                            S::ReadyToReveal => "Ready to reveal",
                            S::NotYetValid => "Not valid yet",
                            S::Active => "Active",
                            S::UsedUp => "Used up",
                            S::Expired => "Expired",
                            S::Cancelled => "Cancelled",
                            S::Replaced => "Replaced",
                            S::Ended => "Ended",
                            S::DisabledByPolicy => "Disabled by policy",
                        }
                        .to_owned(),
                        open: !r.state.is_over(),
                        uses: match r.max_uses {
                            1 => "One-time".to_owned(),
                            max => format!("{} of {max} used", r.uses),
                        },
                        starts_at: crate::api::readable_time(r.starts_at),
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

/// Requests a recovery code for the member with `email`: `lifetime` as people write one
/// (`30m`, `8h`, `7d`), `starts_at` in UTC (`2026-12-01T09:30`), `uses` a whole number; each
/// blank or absent takes the policy's default (its default lifetime, now, one use).
#[server(endpoint = "admin/recovery/request")]
pub async fn request_recovery_code(
    email: String,
    lifetime: Option<String>,
    starts_at: Option<String>,
    uses: Option<String>,
) -> Result<(), AppError> {
    crate::api::respond(async {
        use domain::org_policy::issued_codes::{
            CodeChoice, parse_lifetime, parse_start, parse_uses,
        };
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let choice = CodeChoice {
            lifetime_minutes: parse_lifetime("lifetime", lifetime.as_deref().unwrap_or(""))?,
            starts_at: parse_start(starts_at.as_deref().unwrap_or(""))?,
            uses: parse_uses(uses.as_deref().unwrap_or(""))?,
        };
        domain::recovery_codes::request(
            &crate::auth::command(&state, &member, &source),
            &email,
            choice,
        )
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
        let (from, until) = (
            crate::api::readable_time(request.starts_at),
            crate::api::readable_time(request.expires_at),
        );
        let times = match request.max_uses {
            1 => "once".to_owned(),
            n => format!("{n} times"),
        };
        Ok(RevealedCode {
            terms: match request.state {
                domain::recovery_codes::RecoveryState::NotYetValid => {
                    format!("It works {times}, from {from} until {until}")
                }
                domain::recovery_codes::RecoveryState::Active => {
                    format!("It works {times}, until {until}")
                }
                _ => format!("It does not work now ({})", request.reason()),
            },
            member_email: request.member_email,
            code: code.grouped(),
        })
    })
    .await
}
