//! `/admin/members`: the organization's members with their MFA and backup codes at a
//! glance, found by search and paged by key; revoking codes, resetting MFA, unlocking
//! sign-in after wrong attempts, changing roles, adding and removing members.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{
        groups::RemoveGroupMember,
        members::{
            AddMember, ChangeMemberRole, MemberRow, RemoveMember, ResetMemberMfa,
            RevokeMemberCodes, UnlockMember, list_members,
        },
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error, percent_encode},
};

/// The members page for owners and admins.
#[component]
pub fn MembersPage() -> impl IntoView {
    let query = use_query_map();
    let add = ServerAction::<AddMember>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let revoke = ServerAction::<RevokeMemberCodes>::new();
    let reset = ServerAction::<ResetMemberMfa>::new();
    let unlock = ServerAction::<UnlockMember>::new();
    let role = ServerAction::<ChangeMemberRole>::new();
    let leave = ServerAction::<RemoveGroupMember>::new();
    let add_error = last_error(add);
    // The last failed row action, whichever it was.
    let action_error = Signal::derive(move || {
        [
            last_error(remove).get(),
            last_error(revoke).get(),
            last_error(reset).get(),
            last_error(unlock).get(),
            last_error(role).get(),
            last_error(leave).get(),
        ]
        .into_iter()
        .flatten()
        .next()
    });
    let search = move || query.with(|q| q.get("q").unwrap_or_default());
    // A compliance report category (`low-on-codes`, …): the list is filtered to it.
    let standing = move || query.with(|q| q.get("standing").unwrap_or_default());
    // A group of members (its id): the list is filtered to it.
    let group = move || query.with(|q| q.get("group").and_then(|g| g.parse::<i32>().ok()));
    let after = move || query.with(|q| q.get("after").and_then(|a| a.parse::<i32>().ok()));
    // Reloaded after every change, and for every search or page.
    let members = Resource::new(
        move || {
            (
                search(),
                standing(),
                group(),
                after(),
                add.version().get(),
                remove.version().get(),
                revoke.version().get(),
                reset.version().get(),
                unlock.version().get(),
                role.version().get(),
                leave.version().get(),
            )
        },
        |(q, standing, group, after, ..)| list_members(Some(q), Some(standing), group, after),
    );
    let actions = RowActions {
        remove,
        revoke,
        reset,
        unlock,
        role,
        leave,
    };

    view! {
        <Title text="Members" />
        <section class="panel wide">
            <h1>"Members"</h1>
            <form method="get" action="/admin/members" class="search" role="search">
                <label for="member-search">"Search by email"</label>
                <input id="member-search" name="q" type="search" maxlength="254" value=search />
                <GroupFilter members group=Signal::derive(group) />
                {move || {
                    let standing = standing();
                    (!standing.is_empty())
                        .then(|| view! { <input type="hidden" name="standing" value=standing /> })
                }}
                <button type="submit">"Search"</button>
            </form>
            <FormMessage error=action_error />
            <Transition>
                {move || {
                    members
                        .get()
                        .map(|members| match members {
                            Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                            Ok(page) => {
                                let next = page
                                    .next_after
                                    .map(|next| {
                                        format!(
                                            "/admin/members?q={}&standing={}&group={}&after={next}",
                                            percent_encode(&search()),
                                            percent_encode(&standing()),
                                            group().map(|g| g.to_string()).unwrap_or_default(),
                                        )
                                    });
                                let filtered = page
                                    .standing
                                    .map(|label| {
                                        view! {
                                            <p class="filtered">
                                                "Showing: "
                                                <strong class="standing">{label}</strong>
                                                " · "
                                                <a href="/admin/members">"Show every member"</a>
                                                " · "
                                                <a href="/admin/compliance">"Compliance report"</a>
                                            </p>
                                        }
                                    });
                                // Those who change groups take a member out of the one listed.
                                let out_of = page.group.clone().filter(|_| page.may_manage_groups);
                                let in_group = page
                                    .group
                                    .map(|(_, name)| {
                                        view! {
                                            <p class="filtered">
                                                "Group: "
                                                <strong class="group">{name}</strong>
                                                " · "
                                                <a href="/admin/members">"Show every member"</a>
                                            </p>
                                        }
                                    });
                                view! {
                                    {filtered}
                                    {in_group}
                                    <table class="members">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Email address"</th>
                                                <th scope="col">"Role"</th>
                                                <th scope="col">"MFA"</th>
                                                <th scope="col">"Codes left"</th>
                                                <th scope="col">"Set generated"</th>
                                                <th scope="col">"Last code used"</th>
                                                <th scope="col">"Compliance"</th>
                                                <th scope="col">"Sign-in"</th>
                                                <th scope="col">"Actions"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {page
                                                .rows
                                                .into_iter()
                                                .map(|member| {
                                                    let out_of = out_of.clone();
                                                    view! { <MemberLine member actions out_of /> }
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                    {next
                                        .map(|href| {
                                            view! {
                                                <p>
                                                    <a href=href rel="next">
                                                        "Next page"
                                                    </a>
                                                </p>
                                            }
                                        })}
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
        // Only for whom the gate lets add members (not the help desk or auditors).
        <Transition>
            {move || {
                members
                    .get()
                    .and_then(Result::ok)
                    .filter(|page| page.may_add)
                    .map(|_| view! { <AddMemberForm add add_error /> })
            }}
        </Transition>
    }
}

/// The form that adds a member, with their first password and role.
#[component]
fn AddMemberForm(
    add: ServerAction<AddMember>,
    add_error: Signal<Option<AppError>>,
) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"Add a member"</h2>
            <ActionForm action=add>
                <FormMessage error=add_error />
                <label for="new-email">"Email address"</label>
                <input id="new-email" name="email" type="email" maxlength="254" required aria-describedby="email-error" aria-invalid=invalid(add_error, "email") />
                <FieldMessage error=add_error field="email" />
                <label for="new-password">"Initial password"</label>
                <input
                    id="new-password"
                    name="password"
                    type="password"
                    autocomplete="new-password"
                    maxlength="256"
                    required
                    aria-describedby="password-error"
                    aria-invalid=invalid(add_error, "password")
                />
                <FieldMessage error=add_error field="password" />
                <label for="new-role">"Role"</label>
                <select id="new-role" name="role" aria-describedby="role-error" aria-invalid=invalid(add_error, "role")>
                    {ROLES
                        .into_iter()
                        .filter(|(role, _)| *role != "owner")
                        .map(|(role, label)| {
                            view! {
                                <option value=role selected=role == "member">
                                    {label}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                <FieldMessage error=add_error field="role" />
                <button type="submit" class="primary">
                    "Add member"
                </button>
            </ActionForm>
        </section>
    }
}

/// Every role a member can hold (`domain::identity::Role`'s names) and how the page names
/// it, least powerful first. What each may do is the gate's, documented in the README.
const ROLES: [(&str, &str); 5] = [
    ("member", "Member"),
    ("auditor", "Auditor"),
    ("helpdesk", "Help desk"),
    ("admin", "Admin"),
    ("owner", "Owner"),
];

/// How the page names the role `role`.
fn role_name(role: &str) -> &str {
    ROLES
        .into_iter()
        .find(|(name, _)| *name == role)
        .map_or(role, |(_, label)| label)
}

/// The row actions' server actions, shared by every row.
#[derive(Clone, Copy)]
struct RowActions {
    remove: ServerAction<RemoveMember>,
    revoke: ServerAction<RevokeMemberCodes>,
    reset: ServerAction<ResetMemberMfa>,
    unlock: ServerAction<UnlockMember>,
    role: ServerAction<ChangeMemberRole>,
    leave: ServerAction<RemoveGroupMember>,
}

#[component]
fn MemberLine(
    member: MemberRow,
    actions: RowActions,
    /// The group listed, when the viewer may take members out of it.
    out_of: Option<(i32, String)>,
) -> impl IntoView {
    let member_id = member.id;
    let revoke_label = format!("Revoke codes of {}", member.email);
    let reset_label = format!("Reset MFA of {}", member.email);
    let unlock_label = format!("Unlock sign-in of {}", member.email);
    let locked = !member.locked.is_empty();
    let sign_in = if locked {
        format!("Locked: {}", member.locked.join("; "))
    } else {
        "OK".to_owned()
    };
    let role_label = format!("Role of {}", member.email);
    let change_label = format!("Change role of {}", member.email);
    let remove_label = format!("Remove {}", member.email);
    let current_role = member.role.clone();
    let codes = match (member.codes_remaining, member.set_expired) {
        (None, _) => "None".to_owned(),
        (Some(_), true) => "Expired".to_owned(),
        (Some(n), false) => n.to_string(),
    };
    let standing = match (member.compliant, member.exception) {
        (true, Some(true)) => "Exception: codes allowed",
        (false, Some(true)) => "Non-compliant (exception: codes allowed)",
        (_, Some(false)) => "Exception: no codes",
        (true, None) => "Compliant",
        (false, None) => "Non-compliant",
    };
    // Under "Required" with a date: in grace, or limited.
    let compliance = match &member.deadline {
        Some(deadline) => format!("{standing}, {deadline}"),
        None => standing.to_owned(),
    };
    view! {
        <tr>
            <td>{member.email.clone()}</td>
            <td>{role_name(&member.role).to_owned()}</td>
            <td>{if member.mfa_enabled { "On" } else { "Off" }}</td>
            <td class="codes-left">{codes}</td>
            <td>{member.set_generated_at.unwrap_or_default()}</td>
            <td>{member.last_code_used_at.unwrap_or_default()}</td>
            <td class=if member.compliant { "" } else { "warn" }>{compliance}</td>
            <td class=if locked { "sign-in-state warn" } else { "sign-in-state" }>{sign_in}</td>
            <td class="row-actions">
                {member
                    .manageable
                    .then(|| {
                        let role_id = format!("role-{member_id}");
                        let role_for = role_id.clone();
                        let options = ROLES
                            .into_iter()
                            .map(|(role, label)| {
                                view! {
                                    <option value=role selected=role == current_role>
                                        {label}
                                    </option>
                                }
                            })
                            .collect_view();
                        view! {
                            <ActionForm action=actions.revoke>
                                {hidden_id(member_id)}
                                <button type="submit" aria-label=revoke_label>
                                    "Revoke codes"
                                </button>
                            </ActionForm>
                            <ActionForm action=actions.reset>
                                {hidden_id(member_id)}
                                <button type="submit" aria-label=reset_label>
                                    "Reset MFA"
                                </button>
                            </ActionForm>
                            <ActionForm action=actions.role>
                                {hidden_id(member_id)}
                                <label for=role_for class="visually-hidden">
                                    {role_label}
                                </label>
                                <select id=role_id name="role">
                                    {options}
                                </select>
                                <button type="submit" aria-label=change_label>
                                    "Change role"
                                </button>
                            </ActionForm>
                        }
                    })}
                {(locked && member.unlockable)
                    .then(|| {
                        view! {
                            <ActionForm action=actions.unlock>
                                {hidden_id(member_id)}
                                <button type="submit" aria-label=unlock_label>
                                    "Unlock"
                                </button>
                            </ActionForm>
                        }
                    })}
                {out_of
                    .map(|(group_id, group)| {
                        let label = format!("Take {} out of {group}", member.email);
                        view! {
                            <ActionForm action=actions.leave>
                                <input type="hidden" name="group_id" value=group_id.to_string() />
                                {hidden_id(member_id)}
                                <button type="submit" aria-label=label>
                                    "Take out of group"
                                </button>
                            </ActionForm>
                        }
                    })}
                {member
                    .removable
                    .then(|| {
                        view! {
                            <ActionForm action=actions.remove>
                                {hidden_id(member_id)}
                                <button type="submit" aria-label=remove_label>
                                    "Remove"
                                </button>
                            </ActionForm>
                        }
                    })}
            </td>
        </tr>
    }
}

/// The hidden field that names the member a row's form acts on.
fn hidden_id(member_id: i32) -> impl IntoView {
    view! { <input type="hidden" name="member_id" value=member_id.to_string() /> }
}

/// The "Group" choice of the search form, once the organization has groups.
#[component]
fn GroupFilter(
    members: Resource<Result<crate::api::members::MembersView, AppError>>,
    group: Signal<Option<i32>>,
) -> impl IntoView {
    view! {
        <Transition>
            {move || {
                members
                    .get()
                    .and_then(Result::ok)
                    .filter(|page| !page.groups.is_empty())
                    .map(|page| {
                        view! {
                            <label for="member-group">"Group"</label>
                            <select id="member-group" name="group">
                                <option value="" selected=group.get().is_none()>
                                    "Everyone"
                                </option>
                                {page
                                    .groups
                                    .into_iter()
                                    .map(|(id, name)| {
                                        view! {
                                            <option value=id.to_string() selected=group.get() == Some(id)>
                                                {name}
                                            </option>
                                        }
                                    })
                                    .collect_view()}
                            </select>
                        }
                    })
            }}
        </Transition>
    }
}
