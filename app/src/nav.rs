//! What sits under the site header of every page for a signed-in member: the administration
//! areas' navigation, for the members who help run the organization (owners, admins, the help
//! desk, auditors), so that they move between the areas without going back to the account
//! page; and the countdown to "Required"'s deadline for a member who holds no working code.
//! The link to the page shown carries `aria-current="page"` (the router's `<A>`), which
//! screen readers announce and the stylesheet marks.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use crate::api::account::{Area, CodesDue, current_account};

/// One administration area in the bar: its address, its name, and who sees it.
struct Entry {
    href: &'static str,
    name: &'static str,
    shown: fn(&crate::api::account::Account) -> bool,
}

/// Every administration area, in the order the bar shows them, each shown to whom the gate
/// opens it ([`Area`]). A new area joins here.
const AREAS: [Entry; 11] = [
    Entry {
        href: "/admin",
        name: "Overview",
        shown: |_| true,
    },
    Entry {
        href: "/admin/members",
        name: "Manage members",
        shown: |account| account.may.contains(&Area::ListMembers),
    },
    Entry {
        href: "/admin/groups",
        name: "Groups",
        shown: |account| account.may.contains(&Area::ListMembers),
    },
    Entry {
        href: "/admin/policy",
        name: "Backup-code policy",
        shown: |account| account.may.contains(&Area::ViewPolicy),
    },
    Entry {
        href: "/admin/recovery",
        name: "Recovery codes",
        shown: |account| account.may.contains(&Area::IssueRecoveryCodes),
    },
    Entry {
        href: "/admin/alerts",
        name: "Alerts",
        shown: |account| account.may.contains(&Area::ViewPolicy),
    },
    Entry {
        href: "/admin/audit",
        name: "Audit log",
        shown: |account| account.may.contains(&Area::ViewAudit),
    },
    Entry {
        href: "/admin/compliance",
        name: "Compliance report",
        shown: |account| account.may.contains(&Area::ViewAudit),
    },
    Entry {
        href: "/admin/webhooks",
        name: "Webhooks",
        shown: |account| account.may.contains(&Area::ManageWebhooks),
    },
    Entry {
        href: "/admin/api-tokens",
        name: "API tokens",
        shown: |account| account.may.contains(&Area::ManageApiTokens),
    },
    Entry {
        href: "/admin/backup",
        name: "Data backup",
        shown: |account| account.may.contains(&Area::RequestBackups),
    },
];

/// The administration bar, for members the gate opens an area to, and the countdown to
/// "Required"'s deadline, for members it asks for codes; nothing for anyone else. Read again
/// on every move to another page, so that signing in or out (or generating codes) shows or
/// hides them.
#[component]
pub fn AccountBars() -> impl IntoView {
    let location = use_location();
    let account = Resource::new(move || location.pathname.get(), |_| current_account());
    view! {
        <Suspense>
            {move || {
                account
                    .get()
                    .and_then(Result::ok)
                    .flatten()
                    .map(|account| {
                        let links = account.manages_members.then(|| {
                            AREAS
                                .iter()
                                .filter(|area| (area.shown)(&account))
                                // Exact: the overview at /admin is not "current" on every area under it.
                                .map(|area| view! { <A href=area.href exact=true>{area.name}</A> })
                                .collect_view()
                        });
                        view! {
                            {links
                                .map(|links| {
                                    view! {
                                        <nav class="admin-nav no-print" aria-label="Administration">
                                            {links}
                                        </nav>
                                    }
                                })}
                            {account.codes_due.map(|due| view! { <CodesDueBanner due /> })}
                        }
                    })
            }}
        </Suspense>
    }
}

/// The countdown to "Required"'s deadline: by when, how many days are left, what happens then
/// and the way to comply.
#[component]
fn CodesDueBanner(due: CodesDue) -> impl IntoView {
    let days = if due.days_left == 1 {
        "1 day left".to_owned()
    } else {
        format!("{} days left", due.days_left)
    };
    view! {
        <p class="banner codes-due no-print" role="status">
            {format!(
                "Your organization requires backup codes: generate a set by {} ({days}). After that, until you do, you can use only your MFA settings. ",
                due.by,
            )}
            <a href="/account/backup-codes">"Generate backup codes"</a>
        </p>
    }
}
