//! The wasm entry point: attaches the client-side app to the server-rendered page.

/// Called by the hydration script Leptos renders into every page, once the wasm module has
/// loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
