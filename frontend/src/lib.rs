//! The wasm entry point: makes the islands of a server-rendered page interactive.
//!
//! Lifeline's pages work as plain HTML; the few parts that need a browser (copying and
//! printing backup codes, asking before leaving them unsaved) are Leptos islands, compiled
//! into this module from the `app` crate. Everything else never reaches the browser.

// Links the `app` crate, whose `#[island]` components export themselves to JavaScript.
use app as _;

/// Called by the island script Leptos renders into every page, once the wasm module has
/// loaded; the script then hydrates each `<leptos-island>` on the page.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
