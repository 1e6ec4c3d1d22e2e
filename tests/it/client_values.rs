//! The client's option values: every value its parsers accept is one the
//! run can use; the others are usage errors (exit 2), never a panic.

use crate::support::client::*;
use crate::support::*;

#[test]
fn a_rate_too_slow_to_schedule_is_a_usage_error() {
    // Proves: `bench --rate 1e-20` (one message per 3e12 years, which
    // overflowed the schedule's Duration and panicked with exit 101 and
    // nothing on stdout) is refused at parse time: exit 2, the bounds on
    // stderr, nothing on stdout, with or without --json, whether or not a
    // server listens.
    let srv = Server::start(&[]);
    let live = srv.addr().to_string();
    for target in [live.as_str(), "127.0.0.1:1"] {
        for json in [false, true] {
            let mut args = vec!["bench", target, "--rate", "1e-20", "--duration", "0.2"];
            if json {
                args.push("--json");
            }
            let exit = client(&args);
            assert_no_panic(&exit.stderr);
            assert_eq!(exit.code(), Some(2), "{args:?}\n{}", exit.describe());
            assert!(
                exit.stderr.contains("'--rate <MSGS_PER_SEC>'")
                    && exit
                        .stderr
                        .contains("between 3.18e-8 (one message a year) and 1e9"),
                "{args:?}\n{}",
                exit.describe()
            );
            assert!(exit.stdout.is_empty(), "{args:?}\n{}", exit.describe());
        }
    }
}

#[test]
fn the_slowest_rate_runs() {
    // Proves: the lower bound itself is usable: one message is due at the
    // start, the next a year later, and a short run ends normally.
    let srv = Server::start(&[]);
    let addr = srv.addr().to_string();
    let exit = client(&[
        "bench",
        &addr,
        "--rate",
        "3.18e-8",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_no_panic(&exit.stderr);
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let report: serde_json::Value = serde_json::from_str(&exit.stdout.join("\n")).unwrap();
    assert_eq!(report["messages"], 1, "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
}
