//! Headless Chromium for the dashboard tests: loading a page and reading
//! the DOM it dumps after its scripts ran.

use std::process::Command;
use std::time::Duration;

use super::{require_tool, run_cmd_to_exit, Exit};

/// Runs headless Chromium on `url` with `extra` flags (bounded); None when
/// it is missing (after a SKIP line).
pub fn chromium(test: &str, url: &str, extra: &[String]) -> Option<Exit> {
    if !require_tool(test, "chromium") {
        return None;
    }
    let profile = std::env::temp_dir().join(format!("echo-dash-{}-{}", std::process::id(), test));
    let _ = std::fs::remove_dir_all(&profile);
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd.args(extra);
    cmd.arg(url);
    let exit = run_cmd_to_exit(cmd, Duration::from_secs(90));
    let _ = std::fs::remove_dir_all(&profile);
    Some(exit)
}

/// The text of the element with `id` in a dumped DOM.
pub fn element_text(dom: &str, id: &str) -> String {
    let open = format!("id=\"{id}\"");
    let at = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    dom[start..].split('<').next().unwrap().to_string()
}

/// The opening tag (`<name … >`) of the element with `id`.
pub fn opening_tag<'d>(dom: &'d str, id: &str) -> &'d str {
    let at = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap() + 1;
    &dom[start..end]
}

/// The value of attribute `name` in an opening tag, if it has it.
pub fn attr<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Every element of `inside` (the markup of one element) that opens with
/// `<{name} `: its whole markup up to `</{name}>` or, for an empty SVG
/// element, its tag.
pub fn elements<'d>(inside: &'d str, name: &str) -> Vec<&'d str> {
    let open = format!("<{name} ");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = inside;
    while let Some(at) = rest.find(&open) {
        let from = &rest[at..];
        let tag_end = from.find('>').unwrap() + 1;
        let end = if from[..tag_end].ends_with("/>") {
            tag_end
        } else {
            from.find(&close).map_or(tag_end, |c| c + close.len())
        };
        out.push(&from[..end]);
        rest = &from[end..];
    }
    out
}

/// The markup of the element with `id` (through its closing tag).
pub fn element<'d>(dom: &'d str, id: &str) -> &'d str {
    let tag = opening_tag(dom, id);
    let start = dom.find(tag).unwrap();
    let name = tag[1..].split([' ', '>']).next().unwrap();
    let close = format!("</{name}>");
    let end = start + dom[start..].find(&close).unwrap() + close.len();
    &dom[start..end]
}
