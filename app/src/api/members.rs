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
    /// Whether the viewer may remove this member.
    pub removable: bool,
}

/// The members of the viewer's organization.
#[server(endpoint = "members")]
pub async fn list_members() -> Result<Vec<MemberRow>, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member: viewer,
            ..
        } = crate::auth::signed_in_beyond_mfa_settings().await?;
        Ok(
            domain::accounts::members_seen_by(&state.db, &state.authz, &viewer)
                .await?
                .into_iter()
                .map(|listing| MemberRow {
                    removable: listing.removable,
                    id: listing.member.id,
                    email: listing.member.email,
                    role: listing.member.role.as_str().to_owned(),
                    mfa_enabled: listing.member.mfa_enabled,
                })
                .collect(),
        )
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
            ..
        } = crate::auth::signed_in_beyond_mfa_settings().await?;
        let role = domain::accounts::Role::parse(&role)?;
        let password = domain::secrets::Password::new(password);
        let new = domain::accounts::NewMember {
            email: &email,
            password: &password,
            role,
        };
        let member = domain::accounts::create_member(
            &state.db,
            &state.hasher,
            Some((&state.authz, &viewer)),
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
            ..
        } = crate::auth::signed_in_beyond_mfa_settings().await?;
        let removed =
            domain::accounts::remove_member(&state.db, &state.authz, &viewer, member_id).await?;
        tracing::info!(actor = viewer.id, member = removed.id, "member removed");
        Ok(())
    })
    .await
}
