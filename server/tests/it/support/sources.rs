//! The workspace's Rust sources read as text, for the tests that must cover every server
//! function or follow what one calls: the server functions of `app/src/api/` with their
//! endpoints, and the functions of any file with their bodies.
//!
//! Comments and the insides of string and character literals are blanked first (same byte
//! offsets, spaces instead), so that braces in a format string or a call named in a doc
//! comment cannot mislead the reading.

use std::path::{Path, PathBuf};

/// A path of the workspace, from its root (`app/src/api`).
pub fn workspace_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The `.rs` files in `folder` (of the workspace) and its subfolders, sorted.
pub fn rust_files(folder: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_path(folder), &mut files);
    files.sort();
    files
}

/// One source file: its text and the same text blanked.
pub struct SourceFile {
    pub text: String,
    /// `text` without comments and with the insides of literals replaced by spaces.
    pub code: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let code = blank(&text);
        Self { text, code }
    }

    /// Every function with a body: free functions, methods and nested ones alike.
    pub fn functions(&self) -> Vec<Function> {
        let code = self.code.as_str();
        let mut functions = Vec::new();
        let mut from = 0;
        while let Some(found) = code[from..].find("fn ") {
            let at = from + found;
            from = at + 3;
            if at > 0 && is_ident_byte(code.as_bytes()[at - 1]) {
                continue;
            }
            let name: String = code[at + 3..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let Some(open) = end_of_signature(code, at) else {
                continue;
            };
            if name.is_empty() || code.as_bytes()[open] == b';' {
                continue;
            }
            let close = matching_brace(code, open);
            let line_start = code[..at].rfind('\n').map_or(0, |i| i + 1);
            let prefix = &code[line_start..at];
            functions.push(Function {
                name,
                at,
                top_level: !prefix.starts_with(char::is_whitespace),
                public: prefix.trim_start().starts_with("pub "),
                signature: code[at..open].to_owned(),
                body: code[open..=close].to_owned(),
            });
        }
        functions
    }
}

/// A function as written: where it starts, its signature and its body (blanked).
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    /// Byte offset of its `fn`.
    pub at: usize,
    /// Written at the start of a line: not inside an `impl`, a `mod` or another function.
    pub top_level: bool,
    /// Declared `pub` (not `pub(crate)`).
    pub public: bool,
    pub signature: String,
    pub body: String,
}

/// A server function: `POST /api/<endpoint>`.
#[derive(Debug, Clone)]
pub struct ServerFunction {
    pub endpoint: String,
    /// The `#[server(…)]` attribute as written.
    pub attribute: String,
    pub function: Function,
}

impl ServerFunction {
    /// The path it answers at.
    pub fn path(&self) -> String {
        format!("/api/{}", self.endpoint)
    }
}

/// The folder of the app's server functions.
pub const SERVER_FUNCTIONS_FOLDER: &str = "app/src/api";

/// Every `#[server(endpoint = "…")]` function in `app/src/api/`, in the order of the files
/// and of the functions in them.
pub fn server_functions() -> Vec<ServerFunction> {
    let mut found = Vec::new();
    for path in rust_files(SERVER_FUNCTIONS_FOLDER) {
        let file = SourceFile::read(&path);
        let functions = file.functions();
        for (at, _) in file.code.match_indices("#[server(") {
            // An argument's attribute (`#[server(default)] events: Vec<String>`), in a server
            // function's parameter list, not one of its own.
            let before = file.code[..at].trim_end();
            if before.ends_with('(') || before.ends_with(',') {
                continue;
            }
            let attribute = &file.text[at..at + file.text[at..].find(")]").unwrap()];
            let endpoint = attribute
                .split("endpoint = \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| {
                    panic!("{}: a server function without an endpoint", path.display())
                });
            let function = functions
                .iter()
                .find(|f| f.at > at)
                .unwrap_or_else(|| panic!("{}: {endpoint} has no function", path.display()))
                .clone();
            found.push(ServerFunction {
                endpoint: endpoint.to_owned(),
                attribute: attribute.to_owned(),
                function,
            });
        }
    }
    found
}

/// A route the server answers: a method and a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    pub path: String,
    pub kind: RouteKind,
}

/// What answers at a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    /// A page of the app's router (`app/src/lib.rs`).
    Page,
    /// A server function (`app/src/api/`).
    ServerFunction,
    /// A route of the server's own (`server/src/web.rs`): health checks, downloads, plain
    /// forms that post to their page.
    Server,
}

/// The file that lists the app's pages.
pub const PAGES_FILE: &str = "app/src/lib.rs";
/// The files that build the server's router: its own routes, and the JSON API's.
pub const ROUTER_FILES: [&str; 2] = ["server/src/web.rs", "server/src/api.rs"];
/// The routers one of [`ROUTER_FILES`] merges in, each built in one of them.
const MERGES_READ: [&str; 2] = [".merge(crate::api::routes(", ".merge(authenticated)"];
/// The site's package (wasm, JS, CSS) that `web.rs` mounts: files served to anyone with no
/// session (`SessionFree`), as the fallback serves the site's other files; no route here.
const FILES_MOUNTED: [&str; 1] = [".nest_service(&package_route, package)"];

/// Every route the server answers, read from the sources: the app's pages (`GET`), the server
/// functions (`POST /api/…`) and the server's own routes, sorted. A route written in a way
/// this cannot read fails loudly rather than being left out.
pub fn every_route() -> Vec<Route> {
    let mut routes = page_routes();
    routes.extend(server_functions().into_iter().map(|function| Route {
        method: "POST",
        path: function.path(),
        kind: RouteKind::ServerFunction,
    }));
    routes.extend(server_routes());
    routes.sort();
    routes
}

/// The app's pages: every `<Route path=…>` in `app/src/lib.rs`.
pub fn page_routes() -> Vec<Route> {
    let file = SourceFile::read(&workspace_path(PAGES_FILE));
    let mut routes = Vec::new();
    for (at, _) in file.code.match_indices("<Route ") {
        let end = at + file.code[at..].find('>').expect("a <Route> ends");
        let written = &file.text[at..end];
        let literal = |opening: &str| {
            written
                .split(opening)
                .nth(1)
                .and_then(|rest| rest.split('"').next())
        };
        let path = if let Some(path) = literal("path!(\"") {
            path.to_owned()
        } else if let Some(segment) = literal("StaticSegment(\"") {
            format!("/{segment}")
        } else {
            panic!("{PAGES_FILE}: a route whose path this cannot read: {written}")
        };
        assert!(
            !path.contains(':') && !path.contains('*'),
            "{PAGES_FILE}: {path} has parameters: give the catalogue a value for them"
        );
        routes.push(Route {
            method: "GET",
            path,
            kind: RouteKind::Page,
        });
    }
    routes
}

/// The server's own routes: every `.route("…", method(…)…)` in [`ROUTER_FILES`], one per
/// method. Routes added any other way (`nest`, `route_service`, a `merge` not in
/// [`MERGES_READ`]) fail loudly. `any(…)` routes are the API's catch-alls, which answer 404.
pub fn server_routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for router_file in ROUTER_FILES {
        let file = SourceFile::read(&workspace_path(router_file));
        let mut code = file.code.clone();
        for merge_or_files in MERGES_READ.iter().chain(&FILES_MOUNTED) {
            code = code.replace(merge_or_files, "");
        }
        for other in [".nest(", ".nest_service(", ".merge(", ".route_service("] {
            assert!(
                !code.contains(other),
                "{router_file} adds routes with `{other}`, which the route catalogue cannot read"
            );
        }
        for (at, _) in file.code.match_indices(".route(") {
            let open = at + ".route".len();
            let close = matching_brace(&file.code, open);
            let path = file.text[open..close]
                .split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("{router_file}: a route without a literal path"))
                .to_owned();
            let call = &file.code[open..close];
            if calls(call, "any") {
                continue;
            }
            let methods: Vec<&'static str> = ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter(|method| calls(call, method) || call.contains(&format!(".{method}(")))
                .collect();
            assert!(
                !methods.is_empty(),
                "{router_file}: the route {path} answers methods this cannot read"
            );
            for method in methods {
                routes.push(Route {
                    method: match method {
                        "get" => "GET",
                        "post" => "POST",
                        "put" => "PUT",
                        "patch" => "PATCH",
                        _ => "DELETE",
                    },
                    path: path.clone(),
                    kind: RouteKind::Server,
                });
            }
        }
    }
    routes
}

/// Whether `code` calls `name` as a function, by its bare name or at the end of a path
/// (`name(`, `module::name(`), not as a method.
pub fn calls(code: &str, name: &str) -> bool {
    code.match_indices(&format!("{name}(")).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// Where the signature starting at `at` ends: its body's `{`, or the `;` of a declaration
/// (not one inside brackets, as in `[u8; 32]`).
fn end_of_signature(code: &str, at: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, byte) in code.bytes().enumerate().skip(at) {
        match byte {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b'{' | b';' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The index of the `}` or `)` that closes the `{` or `(` at `open`.
pub fn matching_brace(code: &str, open: usize) -> usize {
    let (opening, closing) = match code.as_bytes()[open] {
        b'(' => (b'(', b')'),
        _ => (b'{', b'}'),
    };
    let mut depth = 0usize;
    for (i, byte) in code.bytes().enumerate().skip(open) {
        if byte == opening {
            depth += 1;
        } else if byte == closing {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unbalanced brackets after byte {open}")
}

fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `text` with comments blanked and the insides of string and character literals replaced by
/// spaces, byte for byte (newlines kept), so offsets into it are offsets into `text`.
pub fn blank(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let blank_range = |out: &mut Vec<u8>, from: usize, to: usize| {
        for byte in &mut out[from..to] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let after_ident = i > 0 && is_ident_byte(bytes[i - 1]);
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| i + n);
            blank_range(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < bytes.len() {
                if bytes[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if bytes[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank_range(&mut out, i, j);
            i = j;
        } else if !after_ident && (rest.starts_with(b"r\"") || rest.starts_with(b"r#")) {
            let hashes = rest[1..].iter().take_while(|&&b| b == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let mut closing = vec![b'"'];
            closing.extend(std::iter::repeat_n(b'#', hashes));
            let start = i + 2 + hashes;
            let end = bytes[start..]
                .windows(closing.len())
                .position(|w| w == closing.as_slice())
                .map_or(bytes.len(), |n| start + n);
            blank_range(&mut out, start, end);
            i = end + closing.len();
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            blank_range(&mut out, i + 1, j.min(bytes.len()));
            i = j + 1;
        } else if rest[0] == b'\'' && !after_ident {
            // A character literal ('x', '\n', '→'), or else a lifetime ('a), left alone.
            let end = if rest.get(1) == Some(&b'\\') {
                rest[2..]
                    .iter()
                    .position(|&b| b == b'\'')
                    .map(|n| i + 2 + n)
            } else {
                text[i + 1..]
                    .chars()
                    .next()
                    .map(|c| i + 1 + c.len_utf8())
                    .filter(|&j| bytes.get(j) == Some(&b'\''))
            };
            match end {
                Some(end) => {
                    blank_range(&mut out, i + 1, end);
                    i = end + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("blanking keeps whole characters outside literals")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_hides_comments_and_literals_and_keeps_offsets() {
        let text = "fn a() -> [u8; 2] { let s = \"{ not a brace }\"; // b() {\n \
                    let c = '{'; let r = r#\"x\"}\"#; x::<'a>(); /* y() */ z(); }\n";
        let file = SourceFile {
            text: text.to_owned(),
            code: blank(text),
        };
        assert_eq!(file.code.len(), text.len());
        assert!(!file.code.contains("b()") && !file.code.contains("not a brace"));
        assert!(file.code.contains("x::<'a>()"), "lifetimes stay");
        let functions = file.functions();
        assert_eq!(functions.len(), 1);
        assert_eq!(functions[0].name, "a");
        assert!(
            functions[0].body.ends_with("z(); }"),
            "{}",
            functions[0].body
        );
        assert!(calls(&functions[0].body, "z") && !calls(&functions[0].body, "y"));
    }
}
