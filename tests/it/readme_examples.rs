//! README's examples run as written: each shell block marked runnable runs
//! against a live server, and every command in it must exit 0.
//!
//! The marker is an HTML comment on the line before the fence (invisible
//! on GitHub), optionally with the server's extra arguments:
//!
//! ````markdown
//! <!-- runnable -->
//! ```console
//! $ echo-client ping 127.0.0.1:7878 -c 3
//! …output, not run…
//! ```
//!
//! <!-- runnable: --mode upper -->
//! ```sh
//! echo-client send 127.0.0.1:7878 hello --mode upper
//! ```
//! ````
//!
//! In a `console` block the lines after `$ ` are the commands (the rest is
//! output); in an `sh`/`bash`/`shell` block every line is, except comments
//! and blank lines. A trailing `\` continues a command. Each block gets its
//! own server (`echo-server` on 127.0.0.1, an ephemeral port, plus the
//! marker's arguments), and `7878` in its commands is rewritten to that
//! port. Commands run with `bash -o pipefail -c` in the repository's root,
//! with the built `echo-server` and `echo-client` first on PATH (as after
//! `cargo install --path .`); each has 60 s.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::client::CLIENT;
use crate::support::{run_cmd_to_exit, Server};

/// A runnable block: where it is, the server's arguments, its commands.
#[derive(Debug, PartialEq)]
struct Block {
    line: usize,
    server_args: Vec<String>,
    commands: Vec<String>,
}

const MARKER: &str = "<!-- runnable";

/// The blocks of `markdown` marked runnable. A marker not followed by a
/// shell fence is an error, so a mistyped block is not silently skipped.
fn runnable_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let marker = lines[i].trim();
        i += 1;
        let Some(rest) = marker.strip_prefix(MARKER) else {
            continue;
        };
        let rest = rest
            .strip_suffix("-->")
            .ok_or(format!("line {i}: the marker must end with -->"))?
            .trim();
        let server_args = match rest.strip_prefix(':') {
            Some(args) => args.split_whitespace().map(String::from).collect(),
            None if rest.is_empty() => Vec::new(),
            None => {
                return Err(format!(
                    "line {i}: `{marker}`: expected <!-- runnable[: SERVER ARGS] -->"
                ))
            }
        };
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        let fence = lines.get(i).map(|l| l.trim()).unwrap_or_default();
        let console = match fence {
            "```console" => true,
            "```sh" | "```bash" | "```shell" => false,
            other => return Err(format!("line {}: a runnable marker must precede a ```sh or ```console block, not `{other}`", i + 1)),
        };
        let line = i + 1;
        i += 1;
        let mut commands: Vec<String> = Vec::new();
        let mut continuing = false;
        while i < lines.len() && lines[i].trim() != "```" {
            let text = lines[i];
            i += 1;
            let command = if continuing {
                Some(text.trim())
            } else if console {
                text.strip_prefix("$ ")
            } else {
                Some(text.trim()).filter(|t| !t.is_empty() && !t.starts_with('#'))
            };
            let Some(command) = command else { continue };
            let (command, more) = match command.strip_suffix('\\') {
                Some(head) => (head.trim_end(), true),
                None => (command, false),
            };
            match commands.last_mut() {
                Some(last) if continuing => {
                    last.push(' ');
                    last.push_str(command);
                }
                _ => commands.push(command.to_string()),
            }
            continuing = more;
        }
        if i == lines.len() {
            return Err(format!("line {line}: the block is not closed"));
        }
        if commands.is_empty() {
            return Err(format!("line {line}: a runnable block without a command"));
        }
        blocks.push(Block {
            line,
            server_args,
            commands,
        });
    }
    Ok(blocks)
}

/// `command` with every `7878` that is a whole number made `port`.
fn with_port(command: &str, port: u16) -> String {
    let bytes = command.as_bytes();
    let mut out = String::with_capacity(command.len());
    let mut i = 0;
    while i < command.len() {
        let whole = command[i..].starts_with("7878")
            && (i == 0 || !bytes[i - 1].is_ascii_digit())
            && !bytes.get(i + 4).is_some_and(u8::is_ascii_digit);
        if whole {
            out.push_str(&port.to_string());
            i += 4;
        } else {
            let c = command[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Runs each block against its own server; the failures, described.
fn run_blocks(blocks: &[Block], source: &str) -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let bin_dir = Path::new(CLIENT).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    for block in blocks {
        let args: Vec<&str> = block.server_args.iter().map(String::as_str).collect();
        let server = Server::start(&args);
        for command in &block.commands {
            let command = with_port(command, server.port());
            let mut cmd = Command::new("bash");
            cmd.args(["-o", "pipefail", "-c", &command])
                .current_dir(root)
                .env("PATH", &path);
            let exit = run_cmd_to_exit(cmd, Duration::from_secs(60));
            if exit.code() != Some(0) {
                failures.push(format!(
                    "{source} line {}: `{command}` {}",
                    block.line,
                    exit.describe()
                ));
            }
        }
    }
    failures
}

#[test]
fn readme_runnable_examples_run_as_written() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("read README.md");
    let blocks = runnable_blocks(&readme).unwrap_or_else(|e| panic!("README.md {e}"));
    if blocks.is_empty() {
        // Nothing marked yet: say so rather than pass unseen.
        println!("SKIP: README.md marks no block <!-- runnable -->");
        return;
    }
    let failures = run_blocks(&blocks, "README.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The harness itself, on README-style examples of this release: the
/// extraction, the port rewrite, and a failing command caught.
#[test]
fn the_harness_runs_marked_blocks_and_catches_a_failure() {
    let sample = "\
Text.

<!-- runnable -->
```console
$ echo-client 127.0.0.1:7878 'hello world'
Received echo: hello world
$ echo-client ping 127.0.0.1:7878 -c 2 -i 0.1 \\
    --strict
```

```sh
not-runnable-anyway 7878
```

<!-- runnable: --mode upper -->
```sh
# a comment
echo-client ping 127.0.0.1:7878 -c 2 -i 0.1 --mode upper --json-stream
echo-client 127.0.0.1:7878 hi --mode upper | grep -x 'Received reply: HI' >/dev/null
```
";
    let blocks = runnable_blocks(sample).unwrap();
    assert_eq!(
        blocks,
        vec![
            Block {
                line: 4,
                server_args: vec![],
                commands: vec![
                    "echo-client 127.0.0.1:7878 'hello world'".into(),
                    "echo-client ping 127.0.0.1:7878 -c 2 -i 0.1 --strict".into(),
                ],
            },
            Block {
                line: 16,
                server_args: vec!["--mode".into(), "upper".into()],
                commands: vec![
                    "echo-client ping 127.0.0.1:7878 -c 2 -i 0.1 --mode upper --json-stream".into(),
                    "echo-client 127.0.0.1:7878 hi --mode upper | grep -x 'Received reply: HI' >/dev/null"
                        .into(),
                ],
            },
        ]
    );
    assert_eq!(
        with_port("a:7878 b 17878 78789 7878", 41),
        "a:41 b 17878 78789 41"
    );
    let failures = run_blocks(&blocks, "sample");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // A command that fails is reported with its line.
    let broken =
        runnable_blocks("<!-- runnable -->\n```sh\necho-client ping 127.0.0.1:1 -c 1\n```\n")
            .unwrap();
    let failures = run_blocks(&broken, "broken");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("broken line 2: `echo-client ping 127.0.0.1:1 -c 1`"),
        "{failures:?}"
    );
    for bad in [
        "<!-- runnable -->\nplain text\n",
        "<!-- runnable -->\n```toml\nport = 1\n```\n",
        "<!-- runnable -->\n```sh\n```\n",
        "<!-- runnable -->\n```sh\necho-client\n",
        "<!-- runnable --mode upper -->\n```sh\nx\n```\n",
    ] {
        assert!(runnable_blocks(bad).is_err(), "{bad}");
    }
}
