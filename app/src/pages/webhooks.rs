//! `/admin/webhooks`, for owners: the organization's own systems (a SIEM, a chat) that receive
//! its audit events, signed; adding one shows its secret once, and each lists its latest
//! deliveries.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::webhooks::{
        AddWebhookForm, AddedWebhook, RemoveWebhook, WebhookRow, WebhooksOverview, add_webhook,
        get_webhooks,
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// Where the plain "Add webhook" form posts: the page itself.
const ADD_URL: &str = "/admin/webhooks";

/// `/admin/webhooks`.
#[component]
pub fn WebhooksPage() -> impl IntoView {
    let remove = ServerAction::<RemoveWebhook>::new();
    // Present only while the server renders its answer to the "Add webhook" form.
    let posted = use_context::<AddWebhookForm>();
    let added = Resource::new(
        || (),
        move |()| {
            let posted = posted.clone();
            async move {
                match posted {
                    Some(form) => Some((
                        form.clone(),
                        add_webhook(form.name, form.url, form.events).await,
                    )),
                    None => None,
                }
            }
        },
    );
    let overview = Resource::new(move || remove.version().get(), |_| get_webhooks());
    let query = leptos_router::hooks::use_query_map();
    let removed = move || query.with(|q| q.get("removed").is_some());
    view! {
        <Title text="Webhooks" />
        <Suspense>
            {move || {
                let (added, overview) = (added.get()?, overview.get()?);
                Some(match (added, overview) {
                    (Some((_, Ok(added))), _) => view! { <AddedPanel added /> }.into_any(),
                    (Some((_, Err(AppError::SignInRequired))), _) | (_, Err(AppError::SignInRequired)) => {
                        view! { <Redirect path="/sign-in" /> }.into_any()
                    }
                    (_, Err(error)) => {
                        view! {
                            <section class="panel">
                                <h1>"Webhooks"</h1>
                                <p class="form-error">{error.to_string()}</p>
                            </section>
                        }
                            .into_any()
                    }
                    (added, Ok(overview)) => {
                        let (form, add_error) = match added {
                            Some((form, Err(error))) => (form, Some(error)),
                            _ => (AddWebhookForm::default(), None),
                        };
                        view! { <WebhooksPanel overview remove removed=removed() form add_error /> }.into_any()
                    }
                })
            }}
        </Suspense>
    }
}

/// The webhook just added, with its secret, this once.
#[component]
fn AddedPanel(added: AddedWebhook) -> impl IntoView {
    view! {
        <section class="panel">
            <h1>"Webhook added"</h1>
            <p class="lead">
                <strong>{added.name}</strong> " will receive the events you chose at " <code>{added.url}</code> "."
            </p>
            <p>"Its signing secret, shown this once: put it in your receiver now."</p>
            <p>
                <code class="webhook-secret" id="webhook-secret">{added.secret}</code>
            </p>
            <p>
                "Each delivery is a POST of JSON with the headers " <code>"webhook-id"</code> ", "
                <code>"webhook-timestamp"</code> " and " <code>"webhook-signature"</code>
                ", signed as the Standard Webhooks specification says (HMAC-SHA-256), so any of its libraries verifies it with this secret. The same event is sent again with the same "
                <code>"webhook-id"</code> " if an attempt fails: treat a repeated id as one event."
            </p>
            <p>
                // A full page load: the secret must not stay in the hydrated page's memory.
                <a href="/admin/webhooks" rel="external">
                    "Done"
                </a>
            </p>
        </section>
    }
}

#[component]
fn WebhooksPanel(
    overview: WebhooksOverview,
    remove: ServerAction<RemoveWebhook>,
    removed: bool,
    form: AddWebhookForm,
    add_error: Option<AppError>,
) -> impl IntoView {
    let add_error = Signal::stored(add_error);
    let remove_error = last_error(remove);
    let full = overview.webhooks.len() as u64 >= overview.max;
    view! {
        <section class="panel">
            <h1>"Webhooks"</h1>
            <p>
                "Send your organization's security events to your own systems (a SIEM, a chat), as they happen. Each is a signed POST of JSON; one that fails is tried again, with the same waits as security mail, and shown below if it never arrives."
            </p>
            {removed.then(|| view! { <p class="status ok" role="status">"Webhook removed."</p> })}
            <FormMessage error=remove_error />
            {if overview.webhooks.is_empty() {
                view! { <p>"No webhooks yet."</p> }.into_any()
            } else {
                overview
                    .webhooks
                    .into_iter()
                    .map(|hook| {
                        let listed = overview.listed_deliveries;
                        view! { <WebhookEntry hook remove listed /> }
                    })
                    .collect_view()
                    .into_any()
            }}
        </section>
        <section class="panel" id="add-webhook">
            <h2>"Add a webhook"</h2>
            {full
                .then(|| {
                    view! {
                        <p>
                            {format!("Your organization has {} webhooks, the most it may have: remove one to add another.", overview.max)}
                        </p>
                    }
                })}
            <form method="post" action=ADD_URL>
                <FormMessage error=add_error />
                <fieldset disabled=full>
                    <label for="webhook-name">"Name"</label>
                    <input id="webhook-name" name="name" type="text" maxlength="80" required value=form.name.clone() aria-describedby="name-error" aria-invalid=invalid(add_error, "name") />
                    <FieldMessage error=add_error field="name" />
                    <label for="webhook-url">"Address (https://)"</label>
                    <input
                        id="webhook-url"
                        name="url"
                        type="url"
                        maxlength="2048"
                        required
                        placeholder="https://siem.example.com/hooks/lifeline"
                        value=form.url.clone()
                        aria-describedby="url-error"
                        aria-invalid=invalid(add_error, "url")
                    />
                    <FieldMessage error=add_error field="url" />
                    <fieldset>
                        <legend>"Events (none ticked: every event)"</legend>
                        {overview
                            .families
                            .into_iter()
                            .map(|family| {
                                let id = format!("webhook-event-{}", family.name);
                                let label_for = id.clone();
                                let checked = form.events.contains(&family.name);
                                view! {
                                    <label class="check" for=label_for>
                                        <input type="checkbox" id=id name="events" value=family.name.clone() checked=checked aria-describedby="events-error" aria-invalid=invalid(add_error, "events") />
                                        <code>{format!("{}.*", family.name)}</code>
                                        {format!(" ({})", family.actions)}
                                    </label>
                                }
                            })
                            .collect_view()}
                    </fieldset>
                    <FieldMessage error=add_error field="events" />
                    <button type="submit" class="primary">"Add webhook"</button>
                </fieldset>
            </form>
        </section>
    }
}

#[component]
fn WebhookEntry(
    hook: WebhookRow,
    remove: ServerAction<RemoveWebhook>,
    listed: u64,
) -> impl IntoView {
    let heading_id = format!("webhook-{}", hook.id);
    let labelled_by = heading_id.clone();
    view! {
        <article class="webhook" aria-labelledby=labelled_by>
            <h2 id=heading_id>{hook.name.clone()}</h2>
            <dl class="facts">
                <dt>"Address"</dt>
                <dd><code>{hook.url}</code></dd>
                <dt>"Events"</dt>
                <dd>{hook.events}</dd>
                <dt>"Added"</dt>
                <dd>{format!("{} by {}", hook.added, hook.added_by)}</dd>
            </dl>
            <h3>{format!("Latest deliveries (up to {listed})")}</h3>
            {if hook.deliveries.is_empty() {
                view! { <p>"None yet."</p> }.into_any()
            } else {
                view! {
                    <table class="members deliveries">
                        <thead>
                            <tr>
                                <th scope="col">"Event"</th>
                                <th scope="col">"Written"</th>
                                <th scope="col">"State"</th>
                                <th scope="col">"Attempts"</th>
                                <th scope="col">"Last error"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {hook
                                .deliveries
                                .into_iter()
                                .map(|delivery| {
                                    view! {
                                        <tr>
                                            <td><code>{delivery.event}</code></td>
                                            <td>{delivery.written_at}</td>
                                            <td>{format!("{} {}", delivery.state, delivery.state_at)}</td>
                                            <td>{delivery.attempts}</td>
                                            <td>{delivery.last_error}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
            <ActionForm action=remove>
                <input type="hidden" name="webhook_id" value=hook.id.to_string() />
                <button type="submit" class="danger">{format!("Remove {}", hook.name)}</button>
            </ActionForm>
        </article>
    }
}
