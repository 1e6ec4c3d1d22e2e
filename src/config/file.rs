//! `--config FILE`: settings from a TOML file, checked as their flags are.
//!
//! The keys are the long option names (`port`, `busy-poll`), the values
//! what the flag takes: a TOML string in the flag's syntax (`"64K"`,
//! `"0.5"`), or an integer, a float or a boolean where that reads
//! naturally (`port = 7878`, `verbose = true`). Each value goes through the
//! flag's own parser, so a bad one fails with the flag's own message, and
//! the error names the key and its line.

use std::path::Path;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, Command};
use toml::de::{DeTable, DeValue};

/// Options about where settings come from rather than settings: they have
/// no key in the file.
const NOT_SETTINGS: [&str; 5] = ["config", "print_config", "completions", "help", "version"];

/// One key of the file, already checked as its flag would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The option's id in the clap definition (`busy_poll`).
    pub id: String,
    /// The key as written (`busy-poll`), which is the long option name.
    pub key: String,
    /// Line of the key, from 1.
    pub line: usize,
    /// The values in the flag's syntax; empty for `metrics = false` (off).
    pub values: Vec<String>,
}

/// The options a file may set, in the order `--help` lists them.
pub fn settings_of(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some() && !NOT_SETTINGS.contains(&a.get_id().as_str()))
}

/// Whether `arg` is an on/off flag (`--verbose`): a TOML boolean in a file.
pub fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue)
}

/// Whether `arg` repeats (`--metrics-allow-host`): a TOML array in a file.
pub fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// Reads and checks the file at `path` against the options of `cmd`.
pub fn read(path: &Path, cmd: &Command) -> Result<Vec<Setting>, clap::Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        cmd.clone().error(
            ErrorKind::Io,
            format!("--config {}: cannot read it: {e}", path.display()),
        )
    })?;
    parse(&text, &path.display().to_string(), cmd)
}

/// Checks `text`, the file called `name` in messages, against `cmd`.
pub fn parse(text: &str, name: &str, cmd: &Command) -> Result<Vec<Setting>, clap::Error> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let fail = |kind: ErrorKind, line: usize, message: String| {
        cmd.clone()
            .error(kind, format!("{name}, line {line}: {message}"))
    };
    let table = DeTable::parse(text).map_err(|e| {
        let line = line_of(e.span().map_or(0, |span| span.start));
        fail(
            ErrorKind::InvalidValue,
            line,
            format!("not valid TOML: {}", e.message()),
        )
    })?;
    // The checks parse flags alone, so a variable set for the server must
    // not take part in them (or make them conflict).
    let checker = cmd.clone().mut_args(|a| a.env(None));
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut settings = Vec::new();
    for (key, value) in entries {
        let line = line_of(key.span().start);
        let key = key.get_ref().as_ref();
        let Some(arg) = settings_of(cmd).find(|a| a.get_long() == Some(key)) else {
            let known: Vec<&str> = settings_of(cmd).filter_map(Arg::get_long).collect();
            return Err(fail(
                ErrorKind::UnknownArgument,
                line,
                format!(
                    "unknown key '{key}'; the keys are the long option names: {}",
                    known.join(", ")
                ),
            ));
        };
        let values = values_of(&checker, arg, value.get_ref())
            .map_err(|message| fail(ErrorKind::InvalidValue, line, format!("{key}: {message}")))?;
        check(&checker, arg, &values)
            .map_err(|message| fail(ErrorKind::InvalidValue, line, format!("{key}: {message}")))?;
        settings.push(Setting {
            id: arg.get_id().to_string(),
            key: key.to_string(),
            line,
            values,
        });
    }
    Ok(settings)
}

/// The flag's values for a TOML `value`, or why it cannot be one.
fn values_of(checker: &Command, arg: &Arg, value: &DeValue<'_>) -> Result<Vec<String>, String> {
    let scalar = |value: &DeValue<'_>| match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(|n| n.to_string())
            .map_err(|_| format!("the integer {} is out of range", i.as_str())),
        DeValue::Float(f) => Ok(f.as_str().to_string()),
        _ => Err("expected a string or a number".to_string()),
    };
    if is_switch(arg) {
        return match value {
            DeValue::Boolean(on) => Ok(vec![on.to_string()]),
            _ => Err("expected true or false".to_string()),
        };
    }
    if is_list(arg) {
        return match value {
            DeValue::Array(items) => items.iter().map(|v| scalar(v.get_ref())).collect(),
            single => scalar(single).map(|v| vec![v]),
        };
    }
    // `--metrics` alone means its default address; `false` leaves it off.
    let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    if let (DeValue::Boolean(on), true) = (value, optional) {
        return Ok(if *on {
            value_when_alone(checker, arg)
        } else {
            Vec::new()
        });
    }
    if matches!(value, DeValue::Array(_)) {
        return Err("takes one value, not a list".to_string());
    }
    scalar(value).map(|v| vec![v])
}

/// What an option with an optional value takes when given without one
/// (`--metrics`: 127.0.0.1:9187), as clap fills it in.
fn value_when_alone(checker: &Command, arg: &Arg) -> Vec<String> {
    let id = arg.get_id().as_str();
    let long = format!("--{}", arg.get_long().unwrap_or(id));
    checker
        .clone()
        .try_get_matches_from(["echo-server", long.as_str()])
        .ok()
        .and_then(|m| {
            m.get_raw(id)
                .map(|v| v.map(|v| v.to_string_lossy().into_owned()).collect())
        })
        .unwrap_or_default()
}

/// The command-line arguments that give `setting` (none for a switch
/// that is off, or `metrics = false`).
fn flag_args(cmd: &Command, setting: &Setting) -> Option<Vec<String>> {
    let arg = settings_of(cmd).find(|a| a.get_id() == setting.id.as_str())?;
    let long = arg.get_long()?;
    if is_switch(arg) {
        return (setting.values == ["true"]).then(|| vec![format!("--{long}")]);
    }
    Some(
        setting
            .values
            .iter()
            .map(|v| format!("--{long}={v}"))
            .collect(),
    )
}

/// Runs `values` through the flag's own parser: its error is the message.
fn check(checker: &Command, arg: &Arg, values: &[String]) -> Result<(), String> {
    let setting = Setting {
        id: arg.get_id().to_string(),
        key: String::new(),
        line: 0,
        values: values.to_vec(),
    };
    parse_alone(checker, &flag_args(checker, &setting).unwrap_or_default())
}

/// Parses `args` as the whole command line; clap's message on failure.
fn parse_alone(checker: &Command, args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("echo-server").chain(args.iter().map(String::as_str));
    checker
        .clone()
        .try_get_matches_from(argv)
        .map(drop)
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        })
}
