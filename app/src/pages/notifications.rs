//! `/account/notifications`: the member's security notifications, the same messages as their
//! email, unread ones marked, and "Mark all as read" (a plain form). The header shows how
//! many are unread ([`UnreadBadge`]).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::notifications::{
        AddNotificationAddress, MarkNotificationsRead, NotificationsOverview,
        RemoveNotificationAddress, VerifyNotificationAddress, get_notifications,
        unread_notifications,
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// `/account/notifications`.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let mark = ServerAction::<MarkNotificationsRead>::new();
    let add = ServerAction::<AddNotificationAddress>::new();
    let remove = ServerAction::<RemoveNotificationAddress>::new();
    let overview = Resource::new(
        move || {
            (
                mark.version().get(),
                add.version().get(),
                remove.version().get(),
            )
        },
        |_| get_notifications(),
    );
    let error = last_error(mark);
    view! {
        <Title text="Notifications" />
        <Suspense>
            {move || {
                overview
                    .get()
                    .map(|overview| match overview {
                        Ok(overview) => {
                            view! {
                                <Addresses overview=overview.clone() add remove />
                                <NotificationList items=overview.items mark error />
                            }
                                .into_any()
                        }
                        Err(AppError::SignInRequired) => view! { <Redirect path="/sign-in" /> }.into_any(),
                        Err(error) => {
                            view! {
                                <section class="panel">
                                    <h1>"Notifications"</h1>
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

/// Where notifications go: the sign-in address, and a second one to add, confirm or remove.
#[component]
fn Addresses(
    overview: NotificationsOverview,
    add: ServerAction<AddNotificationAddress>,
    remove: ServerAction<RemoveNotificationAddress>,
) -> impl IntoView {
    let add_error = last_error(add);
    let remove_error = last_error(remove);
    let query = leptos_router::hooks::use_query_map();
    let sent = query.with_untracked(|q| q.get("sent").is_some());
    view! {
        <section class="panel" id="addresses">
            <h2>"Where notifications are sent"</h2>
            <p>"To " <strong>{overview.sign_in_address}</strong> ", the address you sign in with."</p>
            {overview
                .second_address
                .clone()
                .map(|(email, verified)| {
                    view! {
                        <p>
                            "And to " <strong>{email}</strong>
                            {if verified {
                                ", confirmed."
                            } else {
                                ": waiting for you to follow the link sent to it (24 hours)."
                            }}
                        </p>
                        <ActionForm action=remove>
                            <FormMessage error=remove_error />
                            <button type="submit">"Remove the second address"</button>
                        </ActionForm>
                    }
                })}
            {sent.then(|| view! { <p class="status ok" role="status">"A link was sent to the address: follow it to confirm."</p> })}
            <ActionForm action=add>
                <FormMessage error=add_error />
                <label for="second-address">
                    {if overview.second_address.is_some() { "Replace the second address" } else { "Add a second address" }}
                </label>
                <input id="second-address" name="email" type="email" maxlength="254" autocomplete="email" required aria-describedby="email-error" aria-invalid=invalid(add_error, "email") />
                <FieldMessage error=add_error field="email" />
                <button type="submit">"Send a confirmation link"</button>
            </ActionForm>
        </section>
    }
}

/// `/account/notification-address/verify?token=…`: confirming a second address, from the
/// link sent to it (a plain form: mail scanners that open links confirm nothing).
#[component]
pub fn VerifyAddressPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token")).unwrap_or_default();
    let verify = ServerAction::<VerifyNotificationAddress>::new();
    let error = last_error(verify);
    view! {
        <Title text="Confirm this address" />
        <section class="panel">
            <h1>"Confirm this address"</h1>
            <p>"Confirm that this address should get a copy of your Lifeline security notifications."</p>
            <ActionForm action=verify>
                <FormMessage error />
                <input type="hidden" name="token" value=token />
                <button type="submit" class="primary">"Confirm this address"</button>
            </ActionForm>
        </section>
    }
}

/// `/account/notification-address/verified`.
#[component]
pub fn AddressVerifiedPage() -> impl IntoView {
    view! {
        <Title text="Address confirmed" />
        <section class="panel">
            <h1>"Address confirmed"</h1>
            <p class="lead">"This address now gets a copy of your security notifications."</p>
        </section>
    }
}

#[component]
fn NotificationList(
    items: Vec<crate::api::notifications::NotificationView>,
    mark: ServerAction<MarkNotificationsRead>,
    error: Signal<Option<AppError>>,
) -> impl IntoView {
    let unread = items.iter().filter(|item| !item.read).count();
    view! {
        <section class="panel">
            <h1>"Notifications"</h1>
            <p>
                "What happened to your account, as Lifeline also told you by email. Each says what to do if it was not you."
            </p>
            <FormMessage error />
            {(unread > 0)
                .then(|| {
                    view! {
                        <ActionForm action=mark>
                            <button type="submit">{format!("Mark all {unread} as read")}</button>
                        </ActionForm>
                    }
                })}
            {if items.is_empty() {
                view! { <p>"No notifications yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="notifications">
                        {items
                            .into_iter()
                            .map(|item| {
                                let class = if item.read { "notification" } else { "notification unread" };
                                view! {
                                    <li class=class>
                                        <h2>
                                            {(!item.read).then_some("New: ")} {item.subject}
                                        </h2>
                                        <p class="when">{item.at}</p>
                                        {item
                                            .text
                                            .split("\n\n")
                                            .map(|paragraph| view! { <p class="notification-text">{paragraph.to_owned()}</p> })
                                            .collect_view()}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                }
                    .into_any()
            }}
        </section>
    }
}

/// "Notifications (3)" in the header for a signed-in member with unread ones; nothing else.
#[component]
pub fn UnreadBadge() -> impl IntoView {
    let unread = Resource::new(|| (), |()| unread_notifications());
    view! {
        <Suspense>
            {move || {
                unread
                    .get()
                    .and_then(Result::ok)
                    .filter(|count| *count > 0)
                    .map(|count| {
                        view! {
                            <a href="/account/notifications" class="unread">
                                {format!("Notifications ({count})")}
                            </a>
                        }
                    })
            }}
        </Suspense>
    }
}
