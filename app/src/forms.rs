//! Showing a form's errors next to the fields they are about.
//!
//! Every form on Lifeline's pages is a plain HTML form (pages are server-rendered; only
//! islands run in the browser): a failed post comes back to the page with the error in the
//! URL, which the page's action reads from there. The server lets such a page through only
//! with an error it sent there itself (`server::form_errors`), so what is shown is always
//! Lifeline's own words.

use leptos::{prelude::*, server_fn::ServerFn};

use crate::error::AppError;

/// The parameter naming the server function whose error an address carries (Leptos's name).
pub const FORM_ERROR_PATH: &str = "__path";
/// The parameter carrying that error, encoded (Leptos's name).
pub const FORM_ERROR: &str = "__err";

/// `query` (an address's query string, without `?`) without the form-error parameters
/// ([`FORM_ERROR_PATH`], [`FORM_ERROR`], however their names are percent-encoded), each other
/// parameter kept exactly as written. For every address Lifeline builds from another: an
/// error belongs to the one answer that sent it, never to a link or a `next` made from it.
pub fn without_form_error(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            !form_urlencoded::parse(pair.as_bytes())
                .any(|(name, _)| name == FORM_ERROR_PATH || name == FORM_ERROR)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A confirmation carried by the page's address (`?<parameter>`, where a form's redirect
/// landed), shown once: an island, which drops the parameter from the browser's address
/// once shown, so that the next form posted from the page does not come back to it.
#[island]
pub fn Notice(text: String, parameter: String) -> impl IntoView {
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        {
            let window = window();
            let Ok(href) = window.location().href() else {
                return;
            };
            let Ok(url) = web_sys::Url::new(&href) else {
                return;
            };
            url.search_params().delete(&parameter);
            if let Ok(history) = window.history() {
                let _ = history.replace_state_with_url(
                    &wasm_bindgen::JsValue::NULL,
                    "",
                    Some(&url.href()),
                );
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &parameter;
    });
    view! { <p class="status ok" role="status">{text}</p> }
}

/// The error a plain form's post of `action` left in the URL of this page, if it did.
pub fn last_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
{
    Signal::derive(move || {
        action.value().with(|value| {
            value
                .as_ref()
                .and_then(|result| result.as_ref().err().cloned())
        })
    })
}

/// The message under one field, when the last error was about it.
#[component]
pub fn FieldMessage(
    /// The last error of the form's action.
    error: Signal<Option<AppError>>,
    /// The field's name, as the server function's argument is called.
    field: &'static str,
) -> impl IntoView {
    move || {
        error
            .get()
            .and_then(|error| error.for_field(field))
            .map(|message| {
                view! {
                    <p class="field-error" id=format!("{field}-error") role="alert">
                        {message}
                    </p>
                }
            })
    }
}

/// `aria-invalid` for the input of `field`: `"true"` while the last error is about it, else
/// left out. With `aria-describedby="<field>-error"` on the input, a screen reader reads the
/// [`FieldMessage`] with the field (WCAG 2.2 SC 3.3.1, 4.1.2).
pub fn invalid(
    error: Signal<Option<AppError>>,
    field: &'static str,
) -> impl Fn() -> Option<&'static str> + Send + Sync + Copy + 'static {
    move || {
        error
            .with(|error| error.as_ref().and_then(|error| error.for_field(field)))
            .map(|_| "true")
    }
}

/// The message at the top of a form, for errors that are not about one field. When the
/// change needs the password again, a link to confirm it and come back to this page.
#[component]
pub fn FormMessage(error: Signal<Option<AppError>>) -> impl IntoView {
    let (path, search) = current_address();
    move || {
        error.get().and_then(|error| {
            let reauthenticate = matches!(error, AppError::ReauthenticationRequired);
            let message = error.for_form()?;
            let path = path.clone();
            // Back to the page, not to this error.
            let search = without_form_error(search.trim_start_matches('?'));
            let here = if search.is_empty() {
                path
            } else {
                format!("{path}?{search}")
            };
            let confirm = format!("/account/confirm?next={}", percent_encode(&here));
            Some(view! {
                <p class="form-error" role="alert">
                    {message}
                    {reauthenticate
                        .then(|| view! { " " <a href=confirm rel="external">"Confirm it's you"</a> })}
                </p>
            })
        })
    }
}

/// The page's path and query string (with its `?`): the router's on the server, the
/// browser's in an island (islands run outside the router).
fn current_address() -> (String, String) {
    #[cfg(feature = "hydrate")]
    {
        let location = window().location();
        (
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default(),
        )
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let location = leptos_router::hooks::use_location();
        (
            location.pathname.get_untracked(),
            location.search.get_untracked(),
        )
    }
}

/// The "Verification code" field: six digits from an authenticator app.
#[component]
pub fn CodeInput(
    /// The last error of the form's action.
    error: Signal<Option<AppError>>,
    #[prop(optional)] autofocus: bool,
) -> impl IntoView {
    view! {
        <label for="code">"Verification code"</label>
        <input
            id="code"
            name="code"
            type="text"
            inputmode="numeric"
            autocomplete="one-time-code"
            maxlength="16"
            required
            autofocus=autofocus
            aria-describedby="code-error"
            aria-invalid=invalid(error, "code")
        />
        <FieldMessage error field="code" />
    }
}

/// `text` percent-encoded, leaving only unreserved characters as they are (for `data:` URLs
/// and query strings built on the page).
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Keeps what a person typed into a form across a failed post: every form is a plain HTML
/// form, so a refused post comes back as a fresh page, and without this its fields would be
/// empty again. An island, once on every page: on each submit it notes the form's fields in
/// the tab's session storage; when the page that comes back carries that form's error
/// ([`FORM_ERROR_PATH`] naming the form's action), it fills them in again, and forgets them
/// either way.
///
/// Secrets are never kept: no password, hidden or file input, and no field marked
/// `autocomplete="one-time-code"` or `"off"` (how Lifeline marks authenticator and backup
/// codes). Without JavaScript, fields come back empty, as a plain form's do.
#[island]
pub fn FormKeeper() -> impl IntoView {
    // Effects run only in the browser, after hydration.
    Effect::new(|_| {
        #[cfg(feature = "hydrate")]
        keeper::start();
    });
}

#[cfg(feature = "hydrate")]
mod keeper {
    use serde::{Deserialize, Serialize};
    use wasm_bindgen::JsCast;
    use web_sys::{
        Element, HtmlFormElement, HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement,
        Storage, Url,
    };

    use super::FORM_ERROR_PATH;

    /// The session-storage key of the last form submitted in this tab.
    const KEY: &str = "lifeline.kept-form";

    /// A submitted form's fields, as [`super::FormKeeper`] keeps them.
    #[derive(Serialize, Deserialize)]
    struct Kept {
        /// The path the form posts to (a server function's, e.g. `/api/members/add`).
        action: String,
        /// Each kept field: its name, its value, and for a checkbox or radio button, whether
        /// it was ticked.
        fields: Vec<(String, String, Option<bool>)>,
    }

    pub fn start() {
        let Some(storage) = storage() else { return };
        restore(&storage);
        let handle = leptos::prelude::window_event_listener(leptos::ev::submit, move |event| {
            let form = event
                .target()
                .and_then(|target| target.dyn_into::<HtmlFormElement>().ok());
            if let Some(kept) = form.as_ref().and_then(kept)
                && let Ok(json) = serde_json::to_string(&kept)
            {
                let _ = storage.set_item(KEY, &json);
            }
        });
        // Listens as long as the page lives.
        std::mem::forget(handle);
    }

    fn storage() -> Option<Storage> {
        leptos::prelude::window().session_storage().ok().flatten()
    }

    /// The path of `address` (absolute, as `form.action` gives it).
    fn path_of(address: &str) -> Option<String> {
        Url::new(address).ok().map(|url| url.pathname())
    }

    fn kept(form: &HtmlFormElement) -> Option<Kept> {
        if !form.method().eq_ignore_ascii_case("post") {
            return None;
        }
        let elements = form.elements();
        let fields = (0..elements.length())
            .filter_map(|index| elements.item(index))
            .filter_map(|element| field(&element))
            .collect();
        Some(Kept {
            action: path_of(&form.action())?,
            fields,
        })
    }

    /// `element`'s name and value when it is a field to keep (see [`super::FormKeeper`]).
    fn field(element: &Element) -> Option<(String, String, Option<bool>)> {
        if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
            let kind = input.type_().to_ascii_lowercase();
            let autocomplete = input.autocomplete().to_ascii_lowercase();
            let secret = matches!(kind.as_str(), "password" | "hidden" | "file")
                || matches!(autocomplete.as_str(), "one-time-code" | "off");
            if secret || matches!(kind.as_str(), "submit" | "button" | "reset" | "image") {
                return None;
            }
            let ticked = matches!(kind.as_str(), "checkbox" | "radio").then(|| input.checked());
            return Some((input.name(), input.value(), ticked))
                .filter(|(name, ..)| !name.is_empty());
        }
        if let Some(select) = element.dyn_ref::<HtmlSelectElement>() {
            return Some((select.name(), select.value(), None));
        }
        if let Some(area) = element.dyn_ref::<HtmlTextAreaElement>() {
            return Some((area.name(), area.value(), None));
        }
        None
    }

    /// Fills in the fields kept from the form whose error this page's address carries.
    fn restore(storage: &Storage) {
        let Ok(Some(json)) = storage.get_item(KEY) else {
            return;
        };
        let _ = storage.remove_item(KEY);
        let Ok(kept) = serde_json::from_str::<Kept>(&json) else {
            return;
        };
        let window = leptos::prelude::window();
        let failed = window
            .location()
            .href()
            .ok()
            .and_then(|href| Url::new(&href).ok())
            .and_then(|url| url.search_params().get(FORM_ERROR_PATH));
        if failed.as_deref() != Some(kept.action.as_str()) {
            return;
        }
        let forms = leptos::prelude::document().forms();
        for index in 0..forms.length() {
            let Some(form) = forms
                .item(index)
                .and_then(|form| form.dyn_into::<HtmlFormElement>().ok())
            else {
                continue;
            };
            if path_of(&form.action()).as_deref() == Some(kept.action.as_str()) {
                fill(&form, &kept);
            }
        }
    }

    fn fill(form: &HtmlFormElement, kept: &Kept) {
        let elements = form.elements();
        for element in (0..elements.length()).filter_map(|index| elements.item(index)) {
            let Some((name, value, ticked)) = field(&element) else {
                continue;
            };
            let Some((_, kept_value, kept_ticked)) =
                kept.fields.iter().find(|(kept_name, kept_value, _)| {
                    *kept_name == name && (ticked.is_none() || *kept_value == value)
                })
            else {
                continue;
            };
            match (ticked, kept_ticked) {
                (Some(_), Some(ticked)) => {
                    if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
                        input.set_checked(*ticked);
                    }
                }
                _ => {
                    if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
                        input.set_value(kept_value);
                    } else if let Some(select) = element.dyn_ref::<HtmlSelectElement>() {
                        select.set_value(kept_value);
                    } else if let Some(area) = element.dyn_ref::<HtmlTextAreaElement>() {
                        area.set_value(kept_value);
                    }
                }
            }
        }
    }
}
