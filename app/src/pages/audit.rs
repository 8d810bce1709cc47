//! `/admin/audit`: the organization's audit log for owners and admins, filtered by time,
//! actor, action and outcome (a GET form, so a filtered view has its own address), paged by
//! key, with the hash chain's state and downloads of the filtered view as CSV or JSON Lines.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::Redirect, hooks::use_query_map};

use crate::{
    api::audit::get_audit_log,
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, percent_encode},
};

/// The filter fields, as the page's query string carries them.
const FIELDS: [&str; 5] = ["from", "to", "actor", "action", "outcome"];

/// `/admin/audit`.
#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let field = move |name: &'static str| query.with(|q| q.get(name).filter(|v| !v.is_empty()));
    let log = Resource::new(
        move || {
            (
                FIELDS.map(field),
                query.with(|q| q.get("before").and_then(|b| b.parse::<i64>().ok())),
            )
        },
        |([from, to, actor, action, outcome], before)| {
            get_audit_log(from, to, actor, action, outcome, before)
        },
    );
    // The current filter as a query string, for the "older" link and the downloads.
    let filter_query = move || {
        FIELDS
            .iter()
            .filter_map(|name| {
                field(name).map(|value| format!("{name}={}", percent_encode(&value)))
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    view! {
        <Title text="Audit log" />
        <section class="panel wide">
            <h1>"Audit log"</h1>
            <Suspense>
                {move || {
                    let log = log.get()?;
                    let error = Signal::stored(log.as_ref().err().cloned());
                    Some(match log {
                        Err(AppError::SignInRequired) => view! { <Redirect path="/sign-in" /> }.into_any(),
                        Err(AppError::Refused(message)) => view! { <p class="form-error">{message}</p> }.into_any(),
                        log => {
                            let filters = filter_query();
                            let with = |extra: String| {
                                if filters.is_empty() { extra } else { format!("{filters}&{extra}") }
                            };
                            let csv = format!("/admin/audit/export?{}", with("format=csv".into()));
                            let jsonl = format!("/admin/audit/export?{}", with("format=jsonl".into()));
                            view! {
                                <form method="get" action="/admin/audit" class="audit-filter">
                                    <FormMessage error />
                                    <div class="filter-fields">
                                        <label>"From (day)" <input type="text" name="from" aria-describedby="from-error" aria-invalid=invalid(error, "from") placeholder="2026-01-01" value=field("from") /></label>
                                        <label>"To (day)" <input type="text" name="to" aria-describedby="to-error" aria-invalid=invalid(error, "to") placeholder="2026-12-31" value=field("to") /></label>
                                        <label>"Actor" <input type="text" name="actor" aria-describedby="actor-error" aria-invalid=invalid(error, "actor") placeholder="email" value=field("actor") /></label>
                                        <label>"Action" <input type="text" name="action" aria-describedby="action-error" aria-invalid=invalid(error, "action") placeholder="backup_code.redeemed" value=field("action") /></label>
                                        <label>
                                            "Outcome"
                                            <select name="outcome" aria-describedby="outcome-error" aria-invalid=invalid(error, "outcome")>
                                                {["", "success", "failure", "denied"]
                                                    .into_iter()
                                                    .map(|o| {
                                                        let selected = field("outcome").as_deref() == Some(o);
                                                        view! { <option value=o selected=selected>{if o.is_empty() { "any" } else { o }}</option> }
                                                    })
                                                    .collect_view()}
                                            </select>
                                        </label>
                                    </div>
                                    {FIELDS.map(|name| view! { <FieldMessage error field=name /> }).collect_view()}
                                    <button type="submit">"Filter"</button>
                                </form>
                                {match log {
                                    Ok(view) => {
                                        let older = view.next_before.map(|before| format!("/admin/audit?{}", with(format!("before={before}"))));
                                        view! {
                                            <p class=if view.chain_intact { "status ok chain-state" } else { "status error chain-state" }>
                                                "Hash chain: " {view.chain}
                                            </p>
                                            <p class="downloads">
                                                "Download this view: "
                                                <a href=csv rel="external" download>"CSV"</a>
                                                " · "
                                                <a href=jsonl rel="external" download>"JSON Lines"</a>
                                            </p>
                                            <table class="members audit">
                                                <thead>
                                                    <tr>
                                                        <th scope="col">"#"</th>
                                                        <th scope="col">"When"</th>
                                                        <th scope="col">"Actor"</th>
                                                        <th scope="col">"Action"</th>
                                                        <th scope="col">"Target"</th>
                                                        <th scope="col">"Outcome"</th>
                                                        <th scope="col">"From"</th>
                                                        <th scope="col">"Details"</th>
                                                    </tr>
                                                </thead>
                                                <tbody>
                                                    {view
                                                        .rows
                                                        .into_iter()
                                                        .map(|row| {
                                                            view! {
                                                                <tr>
                                                                    <td>{row.seq}</td>
                                                                    <td>{row.at}</td>
                                                                    <td>{row.actor}</td>
                                                                    <td class="audit-action">{row.action}</td>
                                                                    <td>{row.target}</td>
                                                                    <td>{row.outcome}</td>
                                                                    <td>{row.source_ip}</td>
                                                                    <td><code>{row.details}</code></td>
                                                                </tr>
                                                            }
                                                        })
                                                        .collect_view()}
                                                </tbody>
                                            </table>
                                            {older.map(|href| view! { <p><a href=href rel="next">"Older events"</a></p> })}
                                        }
                                            .into_any()
                                    }
                                    Err(_) => ().into_any(),
                                }}
                            }
                                .into_any()
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}
