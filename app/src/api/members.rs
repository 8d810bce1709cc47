//! The organization's members, for owners and admins.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One row of the members page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub id: i32,
    pub email: String,
    pub role: String,
    pub mfa_enabled: bool,
    /// Unused backup codes of the set in force, if any.
    pub codes_remaining: Option<u32>,
    pub set_generated_at: Option<String>,
    pub last_code_used_at: Option<String>,
    pub set_expired: bool,
    /// Meets the organization's policy.
    pub compliant: bool,
    /// Not compliant under "Required" with a date: "in grace, 5 days left" or "limited to
    /// MFA settings", with when.
    pub deadline: Option<String>,
    /// The exception that decides for this member, their own or else their groups': codes
    /// allowed (`Some(true)`) or not (`Some(false)`).
    pub exception: Option<bool>,
    /// Sign-in factors locked after wrong attempts, in words with the lock's end
    /// ("password until 28 Nov 2026 14:05 UTC").
    pub locked: Vec<String>,
    /// Whether the viewer may revoke codes, reset MFA and change the role.
    pub manageable: bool,
    /// Whether the viewer may end the member's sign-in locks.
    pub unlockable: bool,
    /// Whether the viewer may remove this member.
    pub removable: bool,
}

/// One page of the members list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    /// The compliance report category the list is filtered to, by its label.
    pub standing: Option<String>,
    pub rows: Vec<MemberRow>,
    /// Where the next page starts, if there is one.
    pub next_after: Option<i32>,
    /// The gate lets the viewer add members (`account:member/add`): the page offers the form.
    pub may_add: bool,
    /// The organization's groups, by id and name, to filter by.
    pub groups: Vec<(i32, String)>,
    /// The group the list is filtered to, by id and name.
    pub group: Option<(i32, String)>,
    /// The gate lets the viewer change groups: each row of a group's list offers to take
    /// the member out of it.
    pub may_manage_groups: bool,
}

/// A page of the viewer's organization's members whose email contains `q`, who stand where
/// `standing` says (a compliance report category: `low-on-codes`, …) and who are in
/// `group`, after the member `after`.
#[server(endpoint = "members")]
pub async fn list_members(
    q: Option<String>,
    standing: Option<String>,
    #[server(default)] group: Option<i32>,
    after: Option<i32>,
) -> Result<MembersView, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member: viewer,
            ..
        } = crate::auth::signed_in().await?;
        let standing = match standing.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(slug) => Some(domain::members::Standing::from_slug(slug).ok_or_else(|| {
                AppError::Invalid {
                    field: "standing".to_owned(),
                    message: "There is no such list of members. Open it from the compliance \
                              report."
                        .to_owned(),
                }
            })?),
        };
        let page = domain::members::page(
            &state.db,
            &state.authz,
            &viewer,
            domain::members::Filter {
                search: q.as_deref().unwrap_or_default(),
                standing,
                group,
            },
            after,
            chrono::Utc::now(),
        )
        .await?;
        let groups = domain::groups::names(&state.db, &state.authz, &viewer).await?;
        let group = group.and_then(|id| groups.iter().find(|(known, _)| *known == id).cloned());
        let may_manage_groups = state
            .authz
            .allows(&viewer, viewer.org_id, domain::authz::Action::ManageGroups)
            .await
            .map_err(|cause| AppError::Internal.logged("authorization", &cause))?;
        let may_add = state
            .authz
            .allows(
                &viewer,
                viewer.org_id,
                domain::authz::Action::AddAccount(domain::identity::Role::Member),
            )
            .await
            .map_err(|cause| AppError::Internal.logged("authorization", &cause))?;
        Ok(MembersView {
            may_add,
            rows: page
                .rows
                .into_iter()
                .map(|row| MemberRow {
                    id: row.member.id,
                    email: row.member.email,
                    role: row.member.role.as_str().to_owned(),
                    mfa_enabled: row.member.mfa_enabled,
                    codes_remaining: row.codes_remaining,
                    set_generated_at: row.set_generated_at.map(crate::api::readable_time),
                    last_code_used_at: row.last_code_used_at.map(crate::api::readable_time),
                    set_expired: row.set_expired,
                    compliant: row.compliant,
                    deadline: row.deadline.map(deadline_words),
                    exception: row.exception,
                    locked: row
                        .locked
                        .into_iter()
                        .map(|(factor, until)| {
                            format!(
                                "{} until {}",
                                factor.label(),
                                crate::api::readable_time(until)
                            )
                        })
                        .collect(),
                    manageable: row.manageable,
                    unlockable: row.unlockable,
                    removable: row.removable,
                })
                .collect(),
            next_after: page.next_after,
            standing: standing.map(|standing| standing.label().to_owned()),
            groups,
            group,
            may_manage_groups,
        })
    })
    .await
}

/// Revokes a member's backup codes.
#[server(endpoint = "members/revoke_codes")]
pub async fn revoke_member_codes(member_id: i32) -> Result<(), AppError> {
    act_on_member(member_id, MemberAction::RevokeCodes).await
}

/// Resets a member's MFA: they set it up again at their next sign-in.
#[server(endpoint = "members/reset_mfa")]
pub async fn reset_member_mfa(member_id: i32) -> Result<(), AppError> {
    act_on_member(member_id, MemberAction::ResetMfa).await
}

/// Ends the locks on a member's sign-in after wrong attempts.
#[server(endpoint = "members/unlock")]
pub async fn unlock_member(member_id: i32) -> Result<(), AppError> {
    act_on_member(member_id, MemberAction::Unlock).await
}

/// What an owner or admin does to one member from the console.
#[cfg(feature = "ssr")]
#[derive(Debug, Clone, Copy)]
enum MemberAction {
    RevokeCodes,
    ResetMfa,
    Unlock,
}

#[cfg(feature = "ssr")]
async fn act_on_member(member_id: i32, action: MemberAction) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member: viewer,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let cmd = crate::auth::command(&state, &viewer, &source);
        match action {
            MemberAction::RevokeCodes => domain::members::revoke_codes(&cmd, member_id).await,
            MemberAction::ResetMfa => domain::members::reset_mfa(&cmd, member_id).await,
            MemberAction::Unlock => domain::members::unlock(&cmd, member_id).await,
        }?;
        Ok(())
    })
    .await
}

/// Changes a member's role.
#[server(endpoint = "members/change_role")]
pub async fn change_member_role(member_id: i32, role: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member: viewer,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let role = domain::identity::Role::parse(&role)?;
        domain::members::change_role(
            &crate::auth::command(&state, &viewer, &source),
            member_id,
            role,
        )
        .await?;
        Ok(())
    })
    .await
}

/// Adds a member with an initial password.
#[server(endpoint = "members/add")]
pub async fn add_member(email: String, password: String, role: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member: viewer,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let role = domain::identity::Role::parse(&role)?;
        let password = domain::secrets::Password::new(password);
        let new = domain::accounts::NewMember {
            email: &email,
            password: &password,
            role,
        };
        let member = domain::accounts::create_member(
            &state.db,
            &state.hasher,
            Some(&crate::auth::command(&state, &viewer, &source)),
            viewer.org_id,
            new,
            chrono::Utc::now(),
        )
        .await?;
        tracing::info!(actor = viewer.id, member = member.id, "member added");
        Ok(())
    })
    .await
}

/// Removes a member.
#[server(endpoint = "members/remove")]
pub async fn remove_member(member_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member: viewer,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let removed = domain::accounts::remove_member(
            &crate::auth::command(&state, &viewer, &source),
            member_id,
        )
        .await?;
        tracing::info!(actor = viewer.id, member = removed.id, "member removed");
        Ok(())
    })
    .await
}

/// A member's deadline under "Required", as the console shows it.
#[cfg(feature = "ssr")]
fn deadline_words(deadline: domain::org_policy::grace::Deadline) -> String {
    use domain::org_policy::grace::Deadline;
    match deadline {
        Deadline::Ahead { at, days_left } => format!(
            "in grace, {days_left} {} left (until {})",
            if days_left == 1 { "day" } else { "days" },
            crate::api::readable_time(at)
        ),
        Deadline::Passed { at } => format!(
            "limited to MFA settings since {}",
            crate::api::readable_time(at)
        ),
    }
}
