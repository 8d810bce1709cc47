//! The administration areas' navigation, under the site header of every page for the members
//! who help run the organization (owners, admins, the help desk, auditors), so that they move between the areas
//! without going back to the account page. The link to the page shown carries
//! `aria-current="page"` (the router's `<A>`), which screen readers announce and the
//! stylesheet marks.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use crate::api::account::{Area, current_account};

/// One administration area in the bar: its address, its name, and who sees it.
struct Entry {
    href: &'static str,
    name: &'static str,
    shown: fn(&crate::api::account::Account) -> bool,
}

/// Every administration area, in the order the bar shows them, each shown to whom the gate
/// opens it ([`Area`]). A new area joins here.
const AREAS: [Entry; 10] = [
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

/// The administration bar, for members the gate opens an area to; nothing for anyone else. Read again on
/// every move to another page, so that signing in or out shows or hides it.
#[component]
pub fn AdminNav() -> impl IntoView {
    let location = use_location();
    let account = Resource::new(move || location.pathname.get(), |_| current_account());
    view! {
        <Suspense>
            {move || {
                account
                    .get()
                    .and_then(Result::ok)
                    .flatten()
                    .filter(|account| account.manages_members)
                    .map(|account| {
                        let links = AREAS
                            .iter()
                            .filter(|area| (area.shown)(&account))
                            // Exact: the overview at /admin is not "current" on every area under it.
                            .map(|area| view! { <A href=area.href exact=true>{area.name}</A> })
                            .collect_view();
                        view! {
                            <nav class="admin-nav no-print" aria-label="Administration">
                                {links}
                            </nav>
                        }
                    })
            }}
        </Suspense>
    }
}
