//! Lifeline's user interface: the HTML shell, the routes, the pages and the server functions
//! behind them.
//!
//! This crate builds twice: with `ssr` into the server (rendering pages and running server
//! functions), and with `hydrate` into the wasm bundle that makes those pages interactive.

pub mod api;
#[cfg(feature = "ssr")]
pub mod auth;
pub mod error;
mod forms;
pub use forms::{FORM_ERROR, FORM_ERROR_PATH, without_form_error};
mod nav;
mod pages;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    SsrMode, StaticSegment,
    components::{A, Route, Router, Routes},
    path,
};

use crate::pages::{
    AccountPage, AddressVerifiedPage, AdminHomePage, AlertsPage, ApiTokensPage, AuditPage,
    BackupCodesPage, BackupPage, CompliancePage, ConfirmPage, GroupsPage, HomePage, MembersPage,
    MfaReplacePage, MfaSetupPage, NotFound, NotMePage, NotMeReportedPage, NotificationsPage,
    PolicyPage, RecoveredPage, RecoveryPage, SetupPage, SignInBackupCode, SignInEmail, SignInHelp,
    SignInPassword, SignInVerify, UnreadBadge, VerifyAddressPage, WebhooksPage,
};

/// The HTML document every page is rendered into on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The application: site chrome around the routed pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="lifeline" href="/pkg/lifeline.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "Lifeline".to_owned() } else { format!("{page} · Lifeline") }
        } />
        <Router>
            <header class="site-header no-print">
                <A href="/" attr:class="brand">
                    "Lifeline"
                </A>
                <nav aria-label="Account">
                    <UnreadBadge />
                    <A href="/account">"Account"</A>
                </nav>
            </header>
            <nav::AccountBars />
            <main class="site-main">
                // Async: pages are sent whole, with their data, so that they work without
                // JavaScript too (streamed fragments need a script to fall into place).
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/sign-in") view=SignInEmail ssr=SsrMode::Async />
                    <Route path=path!("/sign-in/password") view=SignInPassword ssr=SsrMode::Async />
                    <Route path=path!("/sign-in/verify") view=SignInVerify ssr=SsrMode::Async />
                    <Route path=path!("/sign-in/help") view=SignInHelp ssr=SsrMode::Async />
                    <Route path=path!("/sign-in/backup-code") view=SignInBackupCode ssr=SsrMode::Async />
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/account/mfa/setup") view=MfaSetupPage ssr=SsrMode::Async />
                    <Route path=path!("/account/mfa/replace") view=MfaReplacePage ssr=SsrMode::Async />
                    <Route path=path!("/account/confirm") view=ConfirmPage ssr=SsrMode::Async />
                    <Route path=path!("/account/backup-codes") view=BackupCodesPage ssr=SsrMode::Async />
                    <Route path=path!("/account/recovered") view=RecoveredPage ssr=SsrMode::Async />
                    <Route path=path!("/account/notifications") view=NotificationsPage ssr=SsrMode::Async />
                    <Route path=path!("/account/notification-address/verify") view=VerifyAddressPage ssr=SsrMode::Async />
                    <Route path=path!("/account/notification-address/verified") view=AddressVerifiedPage ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=AdminHomePage ssr=SsrMode::Async />
                    <Route path=path!("/admin/members") view=MembersPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/groups") view=GroupsPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/policy") view=PolicyPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/recovery") view=RecoveryPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view=AuditPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/compliance") view=CompliancePage ssr=SsrMode::Async />
                    <Route path=path!("/admin/alerts") view=AlertsPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/webhooks") view=WebhooksPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/api-tokens") view=ApiTokensPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/backup") view=BackupPage ssr=SsrMode::Async />
                    <Route path=path!("/not-me") view=NotMePage ssr=SsrMode::Async />
                    <Route path=path!("/not-me/reported") view=NotMeReportedPage ssr=SsrMode::Async />
                    <Route path=path!("/setup") view=SetupPage ssr=SsrMode::Async />
                </Routes>
            </main>
            <footer class="site-footer no-print">
                "Lifeline — backup verification codes for your organization's multi-factor authentication"
            </footer>
            <forms::FormKeeper />
            // Last on the page: the island script hydrates islands in document order.
            <HydratedMark />
        </Router>
    }
}

/// Marks `<body data-hydrated>` once the page's islands are interactive, so that browser
/// tests (and curious people) can tell a live page from a static one. An island itself, the
/// last one on every page: the island script hydrates them in document order.
#[island]
fn HydratedMark() -> impl IntoView {
    // Effects run only in the browser, after hydration.
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "");
        }
    });
}
