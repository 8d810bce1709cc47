//! `/admin/compliance`: the compliance report. Each number links to the members page
//! filtered to the members behind it; the whole list downloads as CSV; a chart shows code
//! redemptions and refused codes per day over the last 30 days.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::compliance::{Category, ComplianceView, Day, get_compliance_report},
    error::AppError,
};

/// `/admin/compliance`.
#[component]
pub fn CompliancePage() -> impl IntoView {
    let report = Resource::new(|| (), |()| get_compliance_report());
    view! {
        <Title text="Compliance report" />
        <section class="panel wide">
            <h1>"Compliance report"</h1>
            <Suspense>
                {move || {
                    report
                        .get()
                        .map(|report| match report {
                            Err(AppError::SignInRequired) => view! { <Redirect path="/sign-in" /> }.into_any(),
                            Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                            Ok(report) => view! { <Report report /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn Report(report: ComplianceView) -> impl IntoView {
    view! {
        <p class="muted">{format!("Backup codes: {}", report.policy)}</p>
        <Figures total=report.total categories=report.categories />
        <p>
            <a href="/admin/compliance/export" download rel="external">
                "Download every member's standing as CSV"
            </a>
        </p>
        <h2>"Backup codes used and refused, last 30 days"</h2>
        <Chart days=report.days />
    }
}

/// The report's numbers, each linking to the members page filtered to its members.
#[component]
pub fn Figures(total: u64, categories: Vec<Category>) -> impl IntoView {
    view! {
        <dl class="facts report-numbers">
            <dt>"Members"</dt>
            <dd>
                <a href="/admin/members" class="count-total">{total}</a>
            </dd>
            {categories
                .into_iter()
                .map(|c| {
                    view! {
                        <dt>{c.label.clone()}</dt>
                        <dd>
                            <a href=c.href() class=format!("count-{}", c.id)>{c.count}</a>
                        </dd>
                    }
                })
                .collect_view()}
        </dl>
    }
}

/// Two bars a day: redemptions (blue) and refused codes (orange), scaled to the busiest day.
#[component]
pub fn Chart(days: Vec<Day>) -> impl IntoView {
    const WIDTH: usize = 600;
    const HEIGHT: usize = 160;
    let most = days
        .iter()
        .map(|d| d.redeemed.max(d.refused))
        .max()
        .unwrap_or(0)
        .max(1) as usize;
    let slot = WIDTH / days.len().max(1);
    let bar = |value: u32| (value as usize * (HEIGHT - 20)) / most;
    let summary = format!(
        "Backup codes in the last {} days: {} used, {} refused",
        days.len(),
        days.iter().map(|d| d.redeemed).sum::<u32>(),
        days.iter().map(|d| d.refused).sum::<u32>(),
    );
    let label = summary.clone();
    // Each series links to the audit log's events behind it, over the chart's days.
    let (first, last) = (
        days.first().map(|d| d.day.clone()).unwrap_or_default(),
        days.last().map(|d| d.day.clone()).unwrap_or_default(),
    );
    let audit_of =
        move |action: &str| format!("/admin/audit?from={first}&to={last}&action={action}");
    view! {
        <svg class="chart" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=label>
            <title>{summary}</title>
            {days
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let x = i * slot;
                    let used = bar(d.redeemed);
                    let refused = bar(d.refused);
                    view! {
                        <g>
                            <title>{format!("{}: {} used, {} refused", d.day, d.redeemed, d.refused)}</title>
                            <rect x=x.to_string() y=(HEIGHT - 20 - used).to_string() width=(slot / 2).to_string() height=used.to_string() class="bar-used" />
                            <rect x=(x + slot / 2).to_string() y=(HEIGHT - 20 - refused).to_string() width=(slot / 2).to_string() height=refused.to_string() class="bar-refused" />
                        </g>
                    }
                })
                .collect_view()}
            <line x1="0" y1=(HEIGHT - 20).to_string() x2=WIDTH.to_string() y2=(HEIGHT - 20).to_string() class="axis" />
            <text x="0" y=(HEIGHT - 4).to_string() class="label">{days.first().map(|d| d.day.clone()).unwrap_or_default()}</text>
            <text x=WIDTH.to_string() y=(HEIGHT - 4).to_string() class="label" text-anchor="end">{days.last().map(|d| d.day.clone()).unwrap_or_default()}</text>
        </svg>
        <p class="legend">
            <a href=audit_of("backup_code.redeemed")>
                <span class="key used"></span>
                " used"
            </a>
            " "
            <a href=audit_of("backup_code.refused")>
                <span class="key refused"></span>
                " refused"
            </a>
        </p>
    }
}
