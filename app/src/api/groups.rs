//! The groups page: the organization's groups of members, adding members to one from a CSV
//! of emails (previewed, then all or nothing), a group's exception from the backup-code
//! setting, and the groups each help-desk member assists.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One group, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    pub id: i32,
    pub name: String,
    pub members: u64,
    /// "Allowed", "Not allowed", or "Follows the organization's setting".
    pub exception: String,
    /// The same as the exception form posts it: `allow`, `deny` or `follow`.
    pub backup_codes: String,
    pub exception_reason: Option<String>,
    /// The help-desk members scoped to it, by email.
    pub scoped_help_desk: Vec<String>,
}

/// A help-desk member and the groups they assist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRow {
    pub member_id: i32,
    pub email: String,
    /// The ids of the groups they assist; none: every member.
    pub groups: Vec<i32>,
}

/// The groups page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsOverview {
    pub groups: Vec<GroupRow>,
    pub help_desk: Vec<ScopeRow>,
    /// The gate lets the viewer create, fill and delete groups, and scope the help desk.
    pub may_manage: bool,
    pub max_groups: u64,
    pub max_csv_rows: usize,
}

/// One row of a CSV of emails, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvRowView {
    pub line: u64,
    pub email: String,
    pub outcome: String,
    /// This row stops the file from being added.
    pub problem: bool,
}

/// What a CSV of emails does (or did) for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvPreviewView {
    pub group_id: i32,
    pub group: String,
    pub adds: usize,
    pub problems: usize,
    pub rows: Vec<CsvRowView>,
    /// The file as read, to add once the preview is right.
    pub csv: String,
    /// The members were added (not only previewed).
    pub added: bool,
}

#[cfg(feature = "ssr")]
fn preview_view(
    group_id: i32,
    csv: String,
    preview: domain::groups::CsvPreview,
    added: bool,
) -> CsvPreviewView {
    CsvPreviewView {
        group_id,
        adds: preview.adds(),
        problems: preview.problems().count(),
        rows: preview
            .rows
            .into_iter()
            .map(|row| CsvRowView {
                line: row.line,
                problem: row.outcome.is_problem(),
                outcome: row.outcome.words(),
                email: row.email,
            })
            .collect(),
        group: preview.group,
        csv,
        added,
    }
}

/// The organization's groups and the help desk's scopes.
#[server(endpoint = "admin/groups")]
pub async fn get_groups() -> Result<GroupsOverview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let groups = domain::groups::list(&state.db, &state.authz, &member).await?;
        let scopes = domain::groups::scopes(&state.db, &state.authz, &member).await?;
        let may_manage = state
            .authz
            .allows(&member, member.org_id, domain::authz::Action::ManageGroups)
            .await
            .map_err(|cause| AppError::Internal.logged("authorization", &cause))?;
        Ok(GroupsOverview {
            groups: groups
                .into_iter()
                .map(|group| GroupRow {
                    id: group.id,
                    name: group.name,
                    members: group.members,
                    exception: match group.exception {
                        Some(true) => "Backup codes allowed",
                        Some(false) => "Backup codes not allowed",
                        None => "Follows the organization's setting",
                    }
                    .to_owned(),
                    backup_codes: match group.exception {
                        Some(true) => "allow",
                        Some(false) => "deny",
                        None => "follow",
                    }
                    .to_owned(),
                    exception_reason: group.exception_reason,
                    scoped_help_desk: group.scoped_help_desk,
                })
                .collect(),
            help_desk: scopes
                .into_iter()
                .map(|scope| ScopeRow {
                    member_id: scope.member.id,
                    email: scope.member.email,
                    groups: scope.groups,
                })
                .collect(),
            may_manage,
            max_groups: domain::groups::MAX_GROUPS,
            max_csv_rows: domain::groups::MAX_CSV_ROWS,
        })
    })
    .await
}

/// Creates a group.
#[server(endpoint = "admin/groups/create")]
pub async fn create_group(name: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::groups::create(&crate::auth::command(&state, &member, &source), &name).await?;
        Ok(())
    })
    .await
}

/// Deletes a group (its members stay in the organization).
#[server(endpoint = "admin/groups/delete")]
pub async fn delete_group(group_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::groups::delete(&crate::auth::command(&state, &member, &source), group_id).await?;
        Ok(())
    })
    .await
}

/// What the plain "Preview" form posts to `/admin/groups`; the server renders that page with
/// it in context, and the page previews from it ([`preview_group_csv`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvPreviewForm {
    pub group_id: i32,
    pub csv: String,
}

/// What adding the members a CSV of emails lists to a group would do, row by row.
#[server(endpoint = "admin/groups/preview")]
pub async fn preview_group_csv(group_id: i32, csv: String) -> Result<CsvPreviewView, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let preview =
            domain::groups::preview_add(&state.db, &state.authz, &member, group_id, &csv).await?;
        Ok(preview_view(group_id, csv, preview, false))
    })
    .await
}

/// Adds the members a CSV of emails lists to a group: all of them, or nobody when a row is
/// wrong. A plain form's post then lands on `/admin/groups?added=<group id>`, which names the
/// group and its new count.
#[server(endpoint = "admin/groups/add")]
pub async fn add_group_csv(group_id: i32, csv: String) -> Result<CsvPreviewView, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let added = domain::groups::add_from_csv(
            &crate::auth::command(&state, &member, &source),
            group_id,
            &csv,
        )
        .await?;
        leptos_axum::redirect(&format!("/admin/groups?added={group_id}#add-to-group"));
        Ok(preview_view(group_id, csv, added, true))
    })
    .await
}

/// Takes a member out of a group.
#[server(endpoint = "admin/groups/remove-member")]
pub async fn remove_group_member(group_id: i32, member_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::groups::remove_member(
            &crate::auth::command(&state, &member, &source),
            group_id,
            member_id,
        )
        .await?;
        Ok(())
    })
    .await
}

/// Sets a group's exception from the backup-code setting: `allow`, `deny`, or `follow`
/// (none).
#[server(endpoint = "admin/groups/exception")]
pub async fn set_group_exception(
    group_id: i32,
    backup_codes: String,
    #[server(default)] reason: String,
) -> Result<(), AppError> {
    crate::api::respond(async {
        let allowed = match backup_codes.as_str() {
            "allow" => Some(true),
            "deny" => Some(false),
            "follow" => None,
            _ => {
                return Err(AppError::Invalid {
                    field: "backup_codes".to_owned(),
                    message: "Choose allowed, not allowed, or the organization's setting."
                        .to_owned(),
                });
            }
        };
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::groups::set_exception(
            &crate::auth::command(&state, &member, &source),
            group_id,
            allowed,
            &reason,
        )
        .await?;
        Ok(())
    })
    .await
}

/// Scopes a help-desk member to the groups checked, posted as `groups[]` once per box (none:
/// they assist every member).
#[server(endpoint = "admin/groups/scope")]
pub async fn set_help_desk_scope(
    member_id: i32,
    #[server(default)] groups: Vec<String>,
) -> Result<(), AppError> {
    crate::api::respond(async {
        let groups = groups
            .iter()
            .map(|group| group.trim().parse::<i32>())
            .collect::<Result<Vec<i32>, _>>()
            .map_err(|_| AppError::Invalid {
                field: "groups".to_owned(),
                message: "Choose groups from the list.".to_owned(),
            })?;
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::groups::set_scope(
            &crate::auth::command(&state, &member, &source),
            member_id,
            &groups,
        )
        .await?;
        Ok(())
    })
    .await
}
