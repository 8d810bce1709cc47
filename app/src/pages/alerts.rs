//! `/admin/alerts`: which events the organization's administrators are alerted to by email,
//! and the security messages that could not be delivered (someone was not told).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::alerts::{AlertsOverview, SaveAlerts, get_alerts},
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// `/admin/alerts`.
#[component]
pub fn AlertsPage() -> impl IntoView {
    let save = ServerAction::<SaveAlerts>::new();
    let overview = Resource::new(move || save.version().get(), |_| get_alerts());
    let query = leptos_router::hooks::use_query_map();
    let saved = move || query.with(|q| q.get("saved").is_some());
    view! {
        <Title text="Alerts" />
        <Suspense>
            {move || {
                overview
                    .get()
                    .map(|overview| match overview {
                        Ok(overview) => view! { <AlertsPanel overview save saved=saved() /> }.into_any(),
                        Err(AppError::SignInRequired) => view! { <Redirect path="/sign-in" /> }.into_any(),
                        Err(error) => {
                            view! {
                                <section class="panel">
                                    <h1>"Alerts"</h1>
                                    <p class="form-error">{error.to_string()}</p>
                                </section>
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

#[component]
fn AlertsPanel(
    overview: AlertsOverview,
    save: ServerAction<SaveAlerts>,
    saved: bool,
) -> impl IntoView {
    let error = last_error(save);
    let disabled = !overview.can_change;
    view! {
        <section class="panel">
            <h1>"Alerts"</h1>
            <p>
                "Every owner and admin gets an email when one of these happens (except the one who did it). Members are always told of what happens to their own account."
            </p>
            {saved.then(|| view! { <p class="status ok" role="status">"Alerts saved."</p> })}
            <ActionForm action=save>
                <FormMessage error />
                <fieldset disabled=disabled>
                    <legend>"Alert the administrators when"</legend>
                    {overview
                        .choices
                        .into_iter()
                        .map(|choice| {
                            let id = format!("alert-{}", choice.name);
                            let label_for = id.clone();
                            view! {
                                <label class="check" for=label_for>
                                    <input type="checkbox" id=id name=format!("fields[{}]", choice.name) value="on" checked=choice.on />
                                    {choice.label}
                                </label>
                            }
                        })
                        .collect_view()}
                    <label for="failed_redemptions_count">"Wrong backup codes against one member that make an alert (2–1000)"</label>
                    <input
                        id="failed_redemptions_count"
                        name="fields[failed_redemptions_count]"
                        type="number"
                        inputmode="numeric"
                        min="2"
                        max="1000"
                        required
                        value=overview.failed_redemptions_count.to_string()
                        aria-describedby="failed_redemptions_count-error"
                        aria-invalid=invalid(error, "failed_redemptions_count")
                    />
                    <FieldMessage error field="failed_redemptions_count" />
                    <label for="failed_redemptions_minutes">"Within this many minutes (1–1440)"</label>
                    <input
                        id="failed_redemptions_minutes"
                        name="fields[failed_redemptions_minutes]"
                        type="number"
                        inputmode="numeric"
                        min="1"
                        max="1440"
                        required
                        value=overview.failed_redemptions_minutes.to_string()
                        aria-describedby="failed_redemptions_minutes-error"
                        aria-invalid=invalid(error, "failed_redemptions_minutes")
                    />
                    <FieldMessage error field="failed_redemptions_minutes" />
                    <label class="check" for="alert-daily-digest">
                        <input
                            type="checkbox"
                            id="alert-daily-digest"
                            name="fields[daily_digest]"
                            value="on"
                            checked=overview.daily_digest
                        />
                        {format!(
                            "Send them once a day, as one digest at {:02}:00 UTC, instead of each at once",
                            overview.digest_hour,
                        )}
                    </label>
                    <button type="submit" class="primary">"Save alerts"</button>
                </fieldset>
            </ActionForm>
        </section>
        <section class="panel" id="failed-messages">
            <h2>"Messages that could not be delivered"</h2>
            {if overview.failed.is_empty() {
                view! { <p>"None: every security message was delivered or is still being tried."</p> }.into_any()
            } else {
                view! {
                    <p>"These people were not told by email. Tell them another way, and check the mail settings."</p>
                    <table class="members">
                        <thead>
                            <tr>
                                <th scope="col">"To"</th>
                                <th scope="col">"Subject"</th>
                                <th scope="col">"Written"</th>
                                <th scope="col">"Given up"</th>
                                <th scope="col">"Attempts"</th>
                                <th scope="col">"Last error"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {overview
                                .failed
                                .into_iter()
                                .map(|message| {
                                    view! {
                                        <tr>
                                            <td>{message.recipient}</td>
                                            <td>{message.subject}</td>
                                            <td>{message.written_at}</td>
                                            <td>{message.failed_at}</td>
                                            <td>{message.attempts}</td>
                                            <td>{message.last_error}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
    }
}
