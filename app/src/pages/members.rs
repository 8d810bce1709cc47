//! `/admin/members`: the organization's members, adding and removing them.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::members::{AddMember, RemoveMember, list_members},
    forms::{FieldMessage, FormMessage, last_error},
};

/// The members page for owners and admins.
#[component]
pub fn MembersPage() -> impl IntoView {
    let add = ServerAction::<AddMember>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let add_error = last_error(add);
    let remove_error = last_error(remove);
    // Reloaded after every add or remove.
    let members = Resource::new(
        move || (add.version().get(), remove.version().get()),
        |_| list_members(),
    );

    view! {
        <Title text="Members" />
        <section class="panel">
            <h1>"Members"</h1>
            <FormMessage error=remove_error />
            <Transition>
                {move || {
                    members
                        .get()
                        .map(|members| match members {
                            Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                            Ok(members) => {
                                view! {
                                    <table class="members">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Email address"</th>
                                                <th scope="col">"Role"</th>
                                                <th scope="col">"MFA"</th>
                                                <th scope="col"></th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {members
                                                .into_iter()
                                                .map(|member| {
                                                    view! {
                                                        <tr>
                                                            <td>{member.email.clone()}</td>
                                                            <td>{member.role.clone()}</td>
                                                            <td>{if member.mfa_enabled { "On" } else { "Off" }}</td>
                                                            <td>
                                                                {member
                                                                    .removable
                                                                    .then(|| {
                                                                        view! {
                                                                            <ActionForm action=remove>
                                                                                <input type="hidden" name="member_id" value=member.id />
                                                                                <button
                                                                                    type="submit"
                                                                                    aria-label=format!("Remove {}", member.email)
                                                                                >
                                                                                    "Remove"
                                                                                </button>
                                                                            </ActionForm>
                                                                        }
                                                                    })}
                                                            </td>
                                                        </tr>
                                                    }
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
        <section class="panel">
            <h2>"Add a member"</h2>
            <ActionForm action=add>
                <FormMessage error=add_error />
                <label for="new-email">"Email address"</label>
                <input id="new-email" name="email" type="email" maxlength="254" required />
                <FieldMessage error=add_error field="email" />
                <label for="new-password">"Initial password"</label>
                <input
                    id="new-password"
                    name="password"
                    type="password"
                    autocomplete="new-password"
                    maxlength="256"
                    required
                />
                <FieldMessage error=add_error field="password" />
                <label for="new-role">"Role"</label>
                <select id="new-role" name="role">
                    <option value="member" selected>"Member"</option>
                    <option value="admin">"Admin"</option>
                </select>
                <FieldMessage error=add_error field="role" />
                <button type="submit" class="primary">
                    "Add member"
                </button>
            </ActionForm>
        </section>
    }
}
