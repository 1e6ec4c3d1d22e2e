//! Settings from `--config FILE` (TOML) and `ECHO_SERVER_*` variables,
//! through the real binary: every key, the precedence flags > variables >
//! file > defaults, refused keys and values (exit 2, key, line, the flag's
//! own message), and `--print-config` read back with `--config`.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A file of its own for `text`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "echo-server-config-{}-{}.toml",
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The server binary with `args` and exactly the `env` settings
/// variables (none inherited from whoever runs the tests).
fn server_cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("ECHO_SERVER_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args).envs(env.iter().copied());
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Exit {
    run_cmd_to_exit(server_cmd(args, env), Duration::from_secs(10))
}

/// One `--print-config` line: the value as TOML and the source comment.
#[derive(Debug, Clone, PartialEq)]
struct Printed {
    value: String,
    source: String,
}

/// Runs `--print-config` with `args` and `env`; key → printed line.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> BTreeMap<String, Printed> {
    let mut argv = vec!["--print-config"];
    argv.extend_from_slice(args);
    let exit = run(&argv, env);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    parse_printed(&exit.stdout)
}

fn parse_printed(lines: &[String]) -> BTreeMap<String, Printed> {
    let mut keys = BTreeMap::new();
    for line in lines {
        if let Some(off) = line
            .strip_prefix("# ")
            .and_then(|l| l.split_once(" is off  # "))
        {
            let printed = Printed {
                value: "off".into(),
                source: off.1.into(),
            };
            keys.insert(off.0.to_string(), printed);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (setting, source) = line
            .split_once("  # ")
            .unwrap_or_else(|| panic!("no source comment: {line:?}"));
        let (key, value) = setting.split_once(" = ").unwrap();
        let printed = Printed {
            value: value.into(),
            source: source.into(),
        };
        assert!(
            keys.insert(key.to_string(), printed).is_none(),
            "{key} twice"
        );
    }
    keys
}

/// Every key: (key, TOML in the file, variable's value, flag's value,
/// then how `--print-config` shows the default, the file's, the
/// variable's and the flag's value). Booleans go true, false, true.
const CASCADE: &[(&str, &str, &str, &str, [&str; 4])] = &[
    (
        "port",
        "9001",
        "9002",
        "9003",
        ["7878", "9001", "9002", "9003"],
    ),
    (
        "bind",
        "\"127.0.0.1\"",
        "::1",
        "::",
        ["off", "\"127.0.0.1\"", "\"::1\"", "\"::\""],
    ),
    (
        "listen",
        "[\"127.0.0.1:9/discard\"]",
        "127.0.0.1:10",
        "127.0.0.1:11/chargen",
        [
            "[]",
            "[\"127.0.0.1:9/discard\"]",
            "[\"127.0.0.1:10\"]",
            "[\"127.0.0.1:11/chargen\"]",
        ],
    ),
    (
        "allow",
        "[\"10.0.0.0/8\"]",
        "10.1.0.0/16,10.2.0.0/16",
        "192.0.2.1",
        [
            "[]",
            "[\"10.0.0.0/8\"]",
            "[\"10.1.0.0/16\", \"10.2.0.0/16\"]",
            "[\"192.0.2.1\"]",
        ],
    ),
    ("max-per-source", "2", "3", "4", ["off", "2", "3", "4"]),
    (
        "proxy-protocol",
        "true",
        "false",
        "",
        ["false", "true", "false", "true"],
    ),
    (
        "proxy-timeout",
        "\"2.5\"",
        "1",
        "0.25",
        ["5", "\"2.5\"", "1", "\"0.25\""],
    ),
    ("backlog", "10", "20", "30", ["1024", "10", "20", "30"]),
    (
        "buffer-size",
        "\"1K\"",
        "2K",
        "3K",
        ["\"64K\"", "\"1K\"", "\"2K\"", "\"3K\""],
    ),
    (
        "no-splice",
        "true",
        "false",
        "",
        ["false", "true", "false", "true"],
    ),
    (
        "splice-backlog",
        "\"1M\"",
        "0",
        "2K",
        ["\"512K\"", "\"1M\"", "0", "\"2K\""],
    ),
    (
        "idle-timeout",
        "0.5",
        "1.5",
        "0",
        ["300", "\"0.5\"", "\"1.5\"", "0"],
    ),
    ("busy-poll", "0", "8", "9", ["\"auto\"", "0", "8", "9"]),
    ("max-connections", "7", "8", "9", ["10000", "7", "8", "9"]),
    (
        "shutdown-timeout",
        "\"2.5\"",
        "1",
        "0.25",
        ["5", "\"2.5\"", "1", "\"0.25\""],
    ),
    ("stats-interval", "0", "2", "3", ["60", "0", "2", "3"]),
    (
        "verbose",
        "true",
        "false",
        "",
        ["false", "true", "false", "true"],
    ),
    ("quiet", "true", "0", "", ["false", "true", "false", "true"]),
    (
        "log-format",
        "\"json\"",
        "text",
        "json",
        ["\"text\"", "\"json\"", "\"text\"", "\"json\""],
    ),
    (
        "metrics",
        "\"127.0.0.1:9001\"",
        "9002",
        "[::1]:9003",
        ["off", "\"127.0.0.1:9001\"", "9002", "\"[::1]:9003\""],
    ),
    (
        "metrics-allow-host",
        "[\"a.lan\"]",
        "b.lan,c.lan",
        "d.lan",
        ["[]", "[\"a.lan\"]", "[\"b.lan\", \"c.lan\"]", "[\"d.lan\"]"],
    ),
    (
        "mode",
        "\"upper\"",
        "discard",
        "chargen",
        ["\"echo\"", "\"upper\"", "\"discard\"", "\"chargen\""],
    ),
    ("max-line", "20", "30", "40", ["off", "20", "30", "40"]),
    // Alone, as --print-config shows them; the pairs are checked at start.
    (
        "tls-cert",
        "\"/f/c.pem\"",
        "/e/c.pem",
        "/l/c.pem",
        ["off", "\"/f/c.pem\"", "\"/e/c.pem\"", "\"/l/c.pem\""],
    ),
    (
        "tls-key",
        "\"/f/k.pem\"",
        "/e/k.pem",
        "/l/k.pem",
        ["off", "\"/f/k.pem\"", "\"/e/k.pem\"", "\"/l/k.pem\""],
    ),
    (
        "tls-self-signed",
        "true",
        "false",
        "",
        ["false", "true", "false", "true"],
    ),
    (
        "tls-client-ca",
        "\"/f/ca.pem\"",
        "/e/ca.pem",
        "/l/ca.pem",
        ["off", "\"/f/ca.pem\"", "\"/e/ca.pem\"", "\"/l/ca.pem\""],
    ),
    (
        "tls-port",
        "8443",
        "9443",
        "10443",
        ["off", "8443", "9443", "10443"],
    ),
    (
        "handshake-timeout",
        "2.5",
        "3",
        "0.5",
        ["10", "\"2.5\"", "3", "\"0.5\""],
    ),
    ("workers", "2", "3", "4", ["\"auto\"", "2", "3", "4"]),
    (
        "prime-test",
        "\"miller-rabin\"",
        "trial-division",
        "miller-rabin",
        [
            "\"trial-division\"",
            "\"miller-rabin\"",
            "\"trial-division\"",
            "\"miller-rabin\"",
        ],
    ),
    (
        "udp",
        "true",
        "false",
        "",
        ["false", "true", "false", "true"],
    ),
    (
        "udp-rate",
        "\"50/s\"",
        "60/s",
        "70",
        ["\"100/s\"", "\"50/s\"", "\"60/s\"", "70"],
    ),
    (
        "udp-bytes",
        "\"64K/s\"",
        "128K/s",
        "1M",
        ["\"1MB/s\"", "\"64K/s\"", "\"128K/s\"", "\"1M\""],
    ),
];

/// One run of the cascade: arguments, variables, the source expected.
type Step<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], String);

fn env_name(key: &str) -> String {
    format!("ECHO_SERVER_{}", key.to_uppercase().replace('-', "_"))
}

// For every key, each source in turn overrides the ones below it, and
// --print-config names it: the default, the file (with the key's line),
// the key's variable, the command line. The other keys stay defaults.
#[test]
fn every_key_from_every_source_in_order_of_precedence() {
    let printed_keys: Vec<String> = print_config(&[], &[]).into_keys().collect();
    let mut tested: Vec<String> = CASCADE.iter().map(|c| c.0.to_string()).collect();
    tested.sort();
    assert_eq!(
        printed_keys, tested,
        "a key without a test, or a test without a key"
    );
    for &(key, file_value, env_value, flag_value, shown) in CASCADE {
        let file = TempFile::new(&format!("# a comment\n{key} = {file_value}\n"));
        let env = env_name(key);
        let flag = if flag_value.is_empty() {
            format!("--{key}")
        } else {
            format!("--{key}={flag_value}")
        };
        let config = ["--config", file.path()];
        let steps: [Step<'_>; 4] = [
            (&[], &[], "default".to_string()),
            (&config, &[], format!("file {}, line 2", file.path())),
            (&config, &[(&env, env_value)], format!("environment {env}")),
            (
                &[&config[..], &[flag.as_str()]].concat(),
                &[(&env, env_value)],
                "command line".to_string(),
            ),
        ];
        for ((args, env, source), value) in steps.iter().zip(shown) {
            let printed = print_config(args, env);
            let want = Printed {
                value: value.to_string(),
                source: source.clone(),
            };
            assert_eq!(printed[key], want, "{key}: {args:?} {env:?}");
            for (other, line) in &printed {
                if other != key {
                    assert_eq!(line.source, "default", "{key} moved {other}");
                }
            }
        }
    }
}

// What --print-config prints, given to --config alone, gives the same
// settings: every key, whatever source each came from.
#[test]
fn print_config_round_trips_through_config() {
    let file = TempFile::new(
        "busy-poll = 0\nmetrics = true\nquiet = true\nbuffer-size = \"16K\"\nbind = \"::1\"\n",
    );
    let args = [
        "--print-config",
        "--config",
        file.path(),
        "-v",
        "--idle-timeout",
        "0.5",
        "--metrics-allow-host=x.lan",
    ];
    let env = [
        ("ECHO_SERVER_PORT", "9000"),
        ("ECHO_SERVER_LOG_FORMAT", "json"),
        ("ECHO_SERVER_NO_SPLICE", "yes"),
    ];
    let exit = run(&args, &env);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let first = parse_printed(&exit.stdout);
    assert_eq!(first["verbose"].value, "true");
    assert_eq!(
        first["quiet"].value, "false",
        "the flag -v outranks the file's quiet"
    );
    assert_eq!(first["port"].source, "environment ECHO_SERVER_PORT");
    let saved = TempFile::new(&(exit.stdout.join("\n") + "\n"));
    let again = print_config(&["--config", saved.path()], &[]);
    let values = |m: &BTreeMap<String, Printed>| -> Vec<(String, String)> {
        m.iter()
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect()
    };
    assert_eq!(values(&again), values(&first));
    for (key, printed) in &again {
        if printed.value != "off" {
            assert!(
                printed
                    .source
                    .starts_with(&format!("file {}, line ", saved.path())),
                "{key}: {printed:?}"
            );
        }
    }
    // And the defaults alone round-trip too.
    let defaults = run(&["--print-config"], &[]);
    let saved = TempFile::new(&(defaults.stdout.join("\n") + "\n"));
    assert_eq!(
        values(&print_config(&["--config", saved.path()], &[])),
        values(&print_config(&[], &[]))
    );
}

/// Runs the server with `--config` holding `text`; asserts it refused it
/// with exit 2 before listening, and returns its stderr.
fn refused(text: &str) -> (String, TempFile) {
    let file = TempFile::new(text);
    let exit = run(
        &[
            "--config",
            file.path(),
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ],
        &[],
    );
    assert_eq!(exit.code(), Some(2), "{text:?}\n{}", exit.describe());
    assert!(
        exit.stdout.is_empty(),
        "{text:?} started: {}",
        exit.describe()
    );
    assert_no_panic(&exit.stderr);
    (exit.stderr, file)
}

// A key that is not an option is refused, named with its line.
#[test]
fn unknown_keys_are_refused_with_their_name_and_line() {
    let (stderr, file) = refused("port = 0\n\n# the old spelling:\nbusy_poll = 0\n");
    assert!(
        stderr.starts_with(&format!(
            "error: {}, line 4: unknown key 'busy_poll'",
            file.path()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("busy-poll"), "lists the keys: {stderr}");
    let (stderr, file) = refused("[server]\nport = 0\n");
    assert!(
        stderr.starts_with(&format!(
            "error: {}, line 1: unknown key 'server'",
            file.path()
        )),
        "{stderr}"
    );
    for not_a_setting in [
        "config = \"other.toml\"",
        "print-config = true",
        "help = true",
    ] {
        let (stderr, _) = refused(not_a_setting);
        assert!(
            stderr.contains("line 1: unknown key"),
            "{not_a_setting}: {stderr}"
        );
    }
}

// A bad value is refused with its key, its line and the message the same
// value gets as a flag.
#[test]
fn bad_values_get_the_flags_own_message() {
    for (key, toml, flag) in [
        ("port", "70000", "--port=70000"),
        ("port", "-1", "--port=-1"),
        ("bind", "\"224.0.0.1\"", "--bind=224.0.0.1"),
        ("bind", "\"fe80::1\"", "--bind=fe80::1"),
        ("backlog", "0", "--backlog=0"),
        ("buffer-size", "\"17M\"", "--buffer-size=17M"),
        ("splice-backlog", "\"1G\"", "--splice-backlog=1G"),
        ("idle-timeout", "\"soon\"", "--idle-timeout=soon"),
        ("idle-timeout", "1e300", "--idle-timeout=1e300"),
        ("busy-poll", "0.5", "--busy-poll=0.5"),
        ("max-connections", "0", "--max-connections=0"),
        (
            "shutdown-timeout",
            "31536000.5",
            "--shutdown-timeout=31536000.5",
        ),
        ("stats-interval", "-1", "--stats-interval=-1"),
        ("log-format", "\"xml\"", "--log-format=xml"),
        ("metrics", "\"localhost:x\"", "--metrics=localhost:x"),
        (
            "metrics-allow-host",
            "[\"ok.lan\", \"host:9187\"]",
            "--metrics-allow-host=host:9187",
        ),
    ] {
        let flag_exit = run(&[flag], &[]);
        assert_eq!(
            flag_exit.code(),
            Some(2),
            "{flag}: {}",
            flag_exit.describe()
        );
        let message = flag_exit
            .stderr
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("error: ");
        assert!(message.contains(&format!("--{key}")), "{flag}: {message}");
        let (stderr, file) = refused(&format!("# bad values\n{key} = {toml}\n"));
        let want = format!("error: {}, line 2: {key}: {message}", file.path());
        assert!(
            stderr.starts_with(&want),
            "{key} = {toml}:\n{stderr}\nwant: {want}"
        );
    }
    // Values of the wrong TOML type, which no flag could be given.
    for (text, want) in [
        (
            "verbose = \"yes\"",
            "line 1: verbose: expected true or false",
        ),
        ("port = [1]", "line 1: port: takes one value, not a list"),
        (
            "port = 1979-05-27",
            "line 1: port: expected a string or a number",
        ),
        ("port = 1\nport = 2", "line 2: not valid TOML"),
        ("port = ", "line 1: not valid TOML"),
        (
            "verbose = true\nquiet = true",
            "line 2: verbose and quiet cannot both be on",
        ),
    ] {
        let (stderr, _) = refused(text);
        assert!(stderr.contains(want), "{text:?}: {stderr}");
    }
    // A file that cannot be read is a bad setting too.
    let exit = run(&["--config", "/nonexistent/echo-server.toml"], &[]);
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(
        exit.stderr
            .starts_with("error: --config /nonexistent/echo-server.toml: cannot read it"),
        "{}",
        exit.stderr
    );
}

// A bad variable is a bad setting: exit 2 before listening.
#[test]
fn bad_variables_are_refused() {
    for (name, value) in [
        ("ECHO_SERVER_PORT", "abc"),
        ("ECHO_SERVER_VERBOSE", "maybe"),
        ("ECHO_SERVER_CONFIG", "/nonexistent/echo-server.toml"),
    ] {
        // A flag would win over the variable, so only the port's is left
        // out (a bad variable refused means nothing listens on 7878).
        let args: &[&str] = if name == "ECHO_SERVER_PORT" {
            &["--bind", "127.0.0.1"]
        } else {
            &["--port", "0", "--bind", "127.0.0.1"]
        };
        let exit = run(args, &[(name, value)]);
        assert_eq!(exit.code(), Some(2), "{name}={value}: {}", exit.describe());
        assert!(
            exit.stdout.is_empty(),
            "{name}={value}: {}",
            exit.describe()
        );
    }
    let exit = run(
        &["--print-config"],
        &[("ECHO_SERVER_VERBOSE", "1"), ("ECHO_SERVER_QUIET", "on")],
    );
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("ECHO_SERVER_VERBOSE and ECHO_SERVER_QUIET cannot both be on"),
        "{}",
        exit.stderr
    );
}

// --help lists every key's variable, and the file's precedence.
#[test]
fn help_lists_every_variable() {
    let exit = run(&["--help"], &[]);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let help = exit.stdout.join("\n");
    for (key, ..) in CASCADE {
        assert!(
            help.contains(&format!("[env: {}=]", env_name(key))),
            "{key}"
        );
    }
    assert!(help.contains("[env: ECHO_SERVER_CONFIG=]"), "{help}");
    assert!(
        help.contains("flags win over variables, variables over the file"),
        "{help}"
    );
}

// A server started from a file alone serves as the file says: where it
// listens, the log's format and detail, the endpoint, its connection cap;
// the variable named by ECHO_SERVER_CONFIG finds the file.
#[test]
fn a_server_runs_as_its_file_says() {
    let file = TempFile::new(
        "# lab host\nport = 0\nbind = \"127.0.0.1\"\nlog-format = \"json\"\nverbose = true\n\
         metrics = \"127.0.0.1:0\"\nmax-connections = 1\n",
    );
    let mut srv = Server::start_cmd(server_cmd(&[], &[("ECHO_SERVER_CONFIG", file.path())]));
    assert_eq!(srv.addr().ip().to_string(), "127.0.0.1");
    srv.wait_for("Metrics on http://127.0.0.1:", START_TIMEOUT);
    let mut first = connect(srv.addr());
    echo_roundtrip(&mut first, b"from the file");
    let data = srv.wait_for_line(|l| l.contains("\"event\":\"DATA\""), Duration::from_secs(5));
    let json: serde_json::Value =
        serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
    assert_eq!(json["level"], "DEBUG", "{data}");
    let _second = connect(srv.addr());
    srv.wait_for_line(
        |l| l.contains("\"event\":\"REJECT\""),
        Duration::from_secs(5),
    );
    let exit = srv.stop("TERM", Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
}
