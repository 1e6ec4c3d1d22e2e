//! Where the settings come from, in order of precedence: flags, then
//! `ECHO_SERVER_*` environment variables, then the `--config` file, then
//! the defaults of the clap definitions (the only place they are written).
//!
//! clap itself orders flags, variables and defaults. The file goes in
//! between by becoming the defaults: its values, checked, replace the
//! options' defaults and the command line is parsed again, so a value from
//! the file is whatever clap reports as a default that the file set.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches};

use crate::config::cli::completions::{self, Shell};
use crate::config::cli::Cli;
use crate::config::file::{self, is_list, is_switch, settings_of, Setting};
use crate::config::Config;

/// What the command line asks the server to do.
#[derive(Debug)]
// Made once per process: the size of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Startup {
    /// Serve with these settings.
    Run(Box<Config>),
    /// `--print-config` or `--completions`: write this text to stdout and exit 0.
    Print(String),
}

/// Where one setting's value came from, lowest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The option's default.
    Default,
    /// The `--config` file, at this line.
    File(usize),
    /// This environment variable.
    Env(String),
    /// The command line.
    Flag,
}

/// Parses `args` (the program name first) with the environment and the
/// `--config` file into what to do. Errors are clap's, so `exit()` prints
/// them (or `--help`) and exits 2 for a bad setting, 0 for help.
pub fn load<I, T>(args: I) -> Result<Startup, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = Cli::command();
    let first = cmd.clone().try_get_matches_from(&args)?;
    // Before the file: the script depends on the definition, not on settings.
    if let Some(&shell) = first.get_one::<Shell>("completions") {
        return Ok(Startup::Print(completions::script(shell, cmd)));
    }
    let file = first.get_one::<PathBuf>("config").cloned();
    let (matches, settings) = match &file {
        None => (first, Vec::new()),
        Some(path) => {
            let settings = file::read(path, &cmd)?;
            let mut layered = cmd.clone();
            for setting in settings.iter().filter(|s| !s.values.is_empty()) {
                let values = setting.values.clone();
                layered = layered.mut_arg(&setting.id, |a| a.default_values(values));
            }
            (layered.try_get_matches_from(&args)?, settings)
        }
    };
    let mut cli = Cli::from_arg_matches(&matches)?;
    let source = |id: &str| source_of(&cmd, &matches, &settings, id);
    // --verbose and --quiet are one setting, the log level: from two
    // sources, the higher one wins; from one, they conflict.
    if cli.verbose && cli.quiet {
        let (verbose, quiet) = (source("verbose"), source("quiet"));
        if verbose.rank() == quiet.rank() {
            let message = match (&verbose, &quiet) {
                (Source::Flag, _) => {
                    "the argument '--verbose' cannot be used with '--quiet'".into()
                }
                (Source::Env(v), Source::Env(q)) => format!("{v} and {q} cannot both be on"),
                (Source::File(v), Source::File(q)) => format!(
                    "{}, line {}: verbose and quiet cannot both be on",
                    file.as_deref().unwrap_or(Path::new("")).display(),
                    v.max(q)
                ),
                // Both on by default cannot happen; worded for completeness.
                _ => "verbose and quiet cannot both be on".into(),
            };
            return Err(cmd.clone().error(ErrorKind::ArgumentConflict, message));
        }
        if verbose.rank() < quiet.rank() {
            cli.verbose = false;
        } else {
            cli.quiet = false;
        }
    }
    // --listen alone replaces the default port, whichever source gave it;
    // a port someone set is listened on beside it.
    if !cli.listen.is_empty() && source("port") == Source::Default {
        cli.port = None;
    }
    if let Some(message) = cli.conflicts() {
        return Err(cmd.clone().error(ErrorKind::ArgumentConflict, message));
    }
    if cli.print_config {
        return Ok(Startup::Print(print(
            &cmd,
            &matches,
            &cli,
            &settings,
            file.as_deref(),
        )));
    }
    Ok(Startup::Run(Box::new(cli.into_config())))
}

impl Source {
    /// Precedence: a higher source's value wins.
    fn rank(&self) -> u8 {
        match self {
            Source::Default => 0,
            Source::File(_) => 1,
            Source::Env(_) => 2,
            Source::Flag => 3,
        }
    }
}

/// Where the value of option `id` in `matches` came from.
fn source_of(cmd: &clap::Command, matches: &ArgMatches, settings: &[Setting], id: &str) -> Source {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Source::Flag,
        Some(ValueSource::EnvVariable) => {
            let env = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(Arg::get_env);
            Source::Env(env.map_or_else(String::new, |e| e.to_string_lossy().into_owned()))
        }
        _ => settings
            .iter()
            .find(|s| s.id == id)
            .map_or(Source::Default, |s| Source::File(s.line)),
    }
}

/// A source as `--print-config` and errors name it.
fn label(source: &Source, file: Option<&Path>) -> String {
    match source {
        Source::Default => "default".to_string(),
        Source::File(line) => {
            let name = file.map_or_else(String::new, |f| f.display().to_string());
            format!("file {name}, line {line}")
        }
        Source::Env(name) => format!("environment {name}"),
        Source::Flag => "command line".to_string(),
    }
}

/// The effective settings as a TOML file for `--config`, each line with a
/// comment naming its source; values as the flags take them.
fn print(
    cmd: &clap::Command,
    matches: &ArgMatches,
    cli: &Cli,
    settings: &[Setting],
    file: Option<&Path>,
) -> String {
    let mut text = format!(
        "# echo-server {}: the effective configuration, each value with where it came from\n\
         # (precedence: command line > ECHO_SERVER_* variables > --config file > defaults).\n\
         # Usable as is with --config.\n",
        env!("CARGO_PKG_VERSION")
    );
    for arg in settings_of(cmd) {
        let id = arg.get_id().as_str();
        let key = arg.get_long().unwrap_or(id);
        let source = label(&source_of(cmd, matches, settings, id), file);
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let line = if is_switch(arg) {
            // The log level may have turned one of verbose/quiet off.
            let on = match id {
                "verbose" => cli.verbose,
                "quiet" => cli.quiet,
                _ => matches.get_flag(id),
            };
            if on == matches.get_flag(id) {
                format!("{key} = {on}  # {source}")
            } else {
                format!("{key} = {on}  # {source} said true; the other of verbose/quiet wins")
            }
        } else if is_list(arg) {
            let items: Vec<String> = raw.iter().map(|v| toml_value(v)).collect();
            format!("{key} = [{}]  # {source}", items.join(", "))
        } else if let Some(value) = raw.first() {
            format!("{key} = {}  # {source}", toml_value(value))
        } else {
            format!("# {key} is off  # {source}")
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// A flag's value as TOML: a plain decimal integer bare, anything else a
/// string (which the flag's parser reads the same).
fn toml_value(value: &str) -> String {
    let plain_integer = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'))
        && value.parse::<i64>().is_ok();
    if plain_integer {
        value.to_string()
    } else {
        toml::Value::String(value.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use log::LevelFilter;

    use super::*;
    use crate::config::cli::Workers;
    use crate::logic::busy_poll::BusyPollSetting;
    use crate::logic::service::{Mode, PrimeTest};
    use crate::server::logging::LogFormat;

    /// Writes `text` to a file of its own and loads `args` with
    /// `--config` pointing at it.
    fn with_file(text: &str, args: &[&str]) -> Result<Startup, clap::Error> {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "echo-server-sources-{}-{}.toml",
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        let path_arg = path.to_str().unwrap().to_string();
        let argv = ["echo-server", "--config", path_arg.as_str()]
            .into_iter()
            .chain(args.iter().copied());
        let result = load(argv);
        let _ = std::fs::remove_file(&path);
        result
    }

    fn config(startup: Result<Startup, clap::Error>) -> Config {
        match startup {
            Ok(Startup::Run(config)) => *config,
            other => panic!("{other:?}"),
        }
    }

    // Every key of a file lands in the Config, in the same syntax as its
    // flag takes (sizes and seconds as strings, integers and booleans as
    // TOML's own).
    #[test]
    fn every_key_in_a_file_reaches_the_config() {
        let file = r#"
            port = 0
            bind = "::1"
            backlog = 64
            buffer-size = "16K"
            no-splice = true
            splice-backlog = "1M"
            idle-timeout = 0.5
            busy-poll = 0
            max-connections = 3
            shutdown-timeout = "1"
            stats-interval = 0
            verbose = true
            quiet = false
            log-format = "json"
            metrics = "9000"
            metrics-allow-host = ["Metrics.Example.org.", "box-1.lan"]
            mode = "upper"
            max-line = 20
            workers = 2
            prime-test = "miller-rabin"
            allow = ["127.0.0.0/8", "::1"]
            max-per-source = 4
            proxy-protocol = true
            proxy-timeout = 2.5
        "#;
        let expected = Config {
            listen: "[::1]:0".parse().unwrap(),
            ports: vec![0],
            listen_more: Vec::new(),
            dual_stack_default: false,
            allow: Some(crate::logic::cidr::AllowList::parse(["127.0.0.0/8", "::1"]).unwrap()),
            max_per_source: Some(4),
            proxy_protocol: Some(Duration::from_millis(2500)),
            backlog: 64,
            buffer_size: 16 << 10,
            splice: false,
            splice_backlog: 1 << 20,
            idle_timeout: Some(Duration::from_millis(500)),
            busy_poll: BusyPollSetting::Window(Duration::ZERO),
            max_connections: 3,
            shutdown_timeout: Duration::from_secs(1),
            stats_interval: None,
            log_level: LevelFilter::Debug,
            log_format: LogFormat::Json,
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
            metrics_allow_hosts: vec!["metrics.example.org".into(), "box-1.lan".into()],
            mode: Mode::Upper,
            max_line: Some(20),
            workers: Workers::Count(2),
            prime_test: PrimeTest::MillerRabin,
            udp: None,
            tls: None,
        };
        assert_eq!(config(with_file(file, &[])), expected);
        // `metrics = true` is `--metrics` without a value; `false` is off.
        let on = config(with_file("metrics = true", &[])).metrics;
        assert_eq!(on, Some(crate::config::DEFAULT_METRICS));
        assert_eq!(config(with_file("metrics = false", &[])).metrics, None);
    }

    // Settings that do not go together stop the start with exit code 2 and
    // say why, from whichever source they came.
    #[test]
    fn mode_settings_that_conflict_are_refused() {
        for (args, says) in [
            (
                &["--mode", "framed", "--buffer-size", "511"][..],
                "at least 512",
            ),
            (&["--mode", "chargen", "--max-line", "20"], "not chargen"),
            (
                &["--max-line", "100", "--buffer-size", "163"],
                "at least 164",
            ),
        ] {
            let argv = std::iter::once("echo-server").chain(args.iter().copied());
            let error = load(argv).expect_err(&format!("{args:?}"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
            assert!(error.to_string().contains(says), "{args:?}: {error}");
        }
        let error = with_file("mode = \"discard\"\nmax-line = 5\n", &[]).expect_err("file");
        assert!(
            error.to_string().contains("--max-line applies to"),
            "{error}"
        );
        let ok = ["echo-server", "--max-line", "100", "--buffer-size", "164"];
        assert!(load(ok).is_ok());
    }

    // --listen replaces the default port, from any source, but not a port
    // that was set (in the file, a variable or a flag).
    #[test]
    fn listen_replaces_only_the_default_port() {
        let ports = |startup| config(startup).ports;
        let only_listen = ["echo-server", "--listen", "127.0.0.1:9/discard"];
        assert_eq!(ports(load(only_listen)), Vec::<u16>::new());
        assert_eq!(
            ports(with_file("listen = [\"127.0.0.1:9\"]\n", &[])),
            Vec::<u16>::new()
        );
        let both = "listen = [\"127.0.0.1:9\"]\nport = 7000\n";
        assert_eq!(ports(with_file(both, &[])), vec![7000]);
        let flag = ["--port", "7001"];
        assert_eq!(
            ports(with_file("listen = [\"127.0.0.1:9\"]\n", &flag)),
            vec![7001]
        );
        assert_eq!(ports(load(["echo-server"])), vec![7878]);
    }

    // A flag wins over the file, key by key; the other keys stay the file's.
    #[test]
    fn flags_win_over_the_file() {
        let file = "port = 9000\nbusy-poll = 0\nbuffer-size = \"16K\"\n";
        let config = config(with_file(file, &["--port", "7000", "--busy-poll=5"]));
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(
            config.busy_poll,
            BusyPollSetting::Window(Duration::from_micros(5))
        );
        assert_eq!(config.buffer_size, 16 << 10);
    }

    // verbose and quiet set one log level: the higher source decides, and
    // both from one source is a usage error (exit 2).
    #[test]
    fn verbose_and_quiet_follow_precedence() {
        let level = |file, args: &[&str]| config(with_file(file, args)).log_level;
        assert_eq!(level("quiet = true", &["-v"]), LevelFilter::Debug);
        assert_eq!(level("verbose = true", &["-q"]), LevelFilter::Error);
        for (file, args) in [
            ("", &["-v", "-q"][..]),
            ("verbose = true\nquiet = true", &[][..]),
        ] {
            let error = with_file(file, args).expect_err(file);
            assert_eq!(error.exit_code(), 2, "{file} {args:?}");
            assert!(error.to_string().contains("quiet"), "{error}");
        }
    }
}
