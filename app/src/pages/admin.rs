//! `/admin`: the administration home. The organization's numbers at a glance (each linking to
//! the members behind it), what needs attention, the newest security events and the last 30
//! days of backup-code use.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::admin::{AdminHome, get_admin_home},
    error::AppError,
    pages::compliance::{Chart, Figures},
};

/// `/admin`.
#[component]
pub fn AdminHomePage() -> impl IntoView {
    let home = Resource::new(|| (), |()| get_admin_home());
    view! {
        <Title text="Administration" />
        <section class="panel wide admin-home">
            <h1>"Administration"</h1>
            <Suspense>
                {move || {
                    home.get()
                        .map(|home| match home {
                            Err(AppError::SignInRequired) => view! { <Redirect path="/sign-in" /> }.into_any(),
                            Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                            Ok(home) => view! { <Home home /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn Home(home: AdminHome) -> impl IntoView {
    let (figures, chart) = match home.report {
        Some(report) => (
            Some(view! {
                <p class="muted">{format!("Backup codes: {}", report.policy)}</p>
                <Figures total=report.total categories=report.categories />
            }),
            Some(view! {
                <h2>"Backup codes used and refused, last 30 days"</h2>
                <Chart days=report.days />
                <p>
                    <a href="/admin/compliance">"Compliance report"</a>
                </p>
            }),
        ),
        None => (None, None),
    };
    let recent = home.recent.map(|recent| {
        view! {
            <h2>"Recent security events"</h2>
            <table class="audit recent-events">
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col">"Who"</th>
                        <th scope="col">"What"</th>
                        <th scope="col">"About"</th>
                        <th scope="col">"Outcome"</th>
                    </tr>
                </thead>
                <tbody>
                    {recent
                        .into_iter()
                        .map(|event| {
                            view! {
                                <tr>
                                    <td>{event.at}</td>
                                    <td>{event.actor}</td>
                                    <td class="audit-action">{event.action}</td>
                                    <td>{event.target}</td>
                                    <td>{event.outcome}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            <p>
                <a href="/admin/audit">"The whole audit log"</a>
            </p>
        }
    });
    view! {
        {figures}
        <h2>"Needs attention"</h2>
        {if home.attention.is_empty() {
            view! { <p class="muted nothing-waiting">"Nothing is waiting for you."</p> }.into_any()
        } else {
            view! {
                <ul class="attention">
                    {home
                        .attention
                        .into_iter()
                        .map(|item| {
                            view! {
                                <li class=format!("attention-{}", item.id)>
                                    <a href=item.href>{item.text}</a>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
                .into_any()
        }}
        {recent}
        {chart}
    }
}
