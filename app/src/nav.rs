//! The administration areas' navigation, under the site header of every page for the members
//! who manage the organization (owners and admins), so that they move between the areas
//! without going back to the account page. The link to the page shown carries
//! `aria-current="page"` (the router's `<A>`), which screen readers announce and the
//! stylesheet marks.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use crate::api::account::current_account;

/// One administration area: its address, its name, and who sees it.
struct Area {
    href: &'static str,
    name: &'static str,
    shown: fn(&crate::api::account::Account) -> bool,
}

/// Every administration area, in the order the bar shows them. A new area joins here.
const AREAS: [Area; 10] = [
    Area {
        href: "/admin",
        name: "Overview",
        shown: |_| true,
    },
    Area {
        href: "/admin/members",
        name: "Manage members",
        shown: |_| true,
    },
    Area {
        href: "/admin/policy",
        name: "Backup-code policy",
        shown: |_| true,
    },
    Area {
        href: "/admin/recovery",
        name: "Recovery codes",
        shown: |_| true,
    },
    Area {
        href: "/admin/alerts",
        name: "Alerts",
        shown: |_| true,
    },
    Area {
        href: "/admin/audit",
        name: "Audit log",
        shown: |_| true,
    },
    Area {
        href: "/admin/compliance",
        name: "Compliance report",
        shown: |_| true,
    },
    // Webhooks are the owners' (the gate refuses admins; the page says so).
    Area {
        href: "/admin/webhooks",
        name: "Webhooks",
        shown: |account| account.role == "owner",
    },
    // Owners and admins (Casbin `api_tokens/manage`): everyone the bar is shown to.
    Area {
        href: "/admin/api-tokens",
        name: "API tokens",
        shown: |_| true,
    },
    // Owners, and admins when the policy lets them request backups.
    Area {
        href: "/admin/backup",
        name: "Data backup",
        shown: |account| account.requests_backups,
    },
];

/// The administration bar, for owners and admins; nothing for anyone else. Read again on
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
