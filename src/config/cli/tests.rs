//! The server's command line end to end: defaults, every value parser
//! through its flag, the conflicts, and the translation into [`Config`].

use super::*;
use clap::CommandFactory;
use log::LevelFilter;

use crate::config::{Config, UdpSettings, DEFAULT_METRICS};

fn parse(args: &[&str]) -> Result<Config, clap::Error> {
    let argv = std::iter::once("echo-server").chain(args.iter().copied());
    Cli::try_parse_from(argv).map(Cli::into_config)
}

// clap's own consistency checks on the whole definition.
#[test]
fn command_is_well_formed() {
    Cli::command().debug_assert();
}

// No arguments gives the documented defaults (README's options table;
// FR-1: port 7878 on all interfaces, IPv6 and IPv4 where the host has
// IPv6). The defaults themselves live
// only in the clap attributes above.
#[test]
fn defaults_match_the_documented_config() {
    let documented = Config {
        listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 7878)),
        ports: vec![7878],
        listen_more: Vec::new(),
        dual_stack_default: true,
        allow: None,
        max_per_source: None,
        proxy_protocol: None,
        backlog: 1024,
        buffer_size: 64 * 1024,
        splice: true,
        splice_backlog: 512 * 1024,
        idle_timeout: Some(Duration::from_secs(300)),
        busy_poll: BusyPollSetting::Auto,
        max_connections: 10_000,
        shutdown_timeout: Duration::from_secs(5),
        stats_interval: Some(Duration::from_secs(60)),
        log_level: LevelFilter::Info,
        log_format: LogFormat::Text,
        metrics: None,
        metrics_allow_hosts: Vec::new(),
        mode: Mode::Echo,
        max_line: None,
        workers: Workers::Auto,
        prime_test: PrimeTest::TrialDivision,
        udp: None,
        tls: None,
    };
    assert_eq!(parse(&[]).unwrap(), documented);
}

// Every flag reaches the config, short forms included.
#[test]
fn flags_reach_the_config() {
    let config = parse(&[
        "-p",
        "0",
        "-b",
        "::1",
        "--backlog",
        "64",
        "--buffer-size",
        "16K",
        "--splice-backlog",
        "1M",
        "--idle-timeout",
        "0.5",
        "--busy-poll",
        "200",
        "--max-connections",
        "3",
        "--shutdown-timeout",
        "1",
        "--stats-interval",
        "0",
        "-v",
    ])
    .unwrap();
    assert_eq!(config.listen, "[::1]:0".parse().unwrap());
    assert_eq!(config.backlog, 64);
    assert_eq!(config.buffer_size, 16384);
    assert_eq!(config.splice_backlog, 1 << 20);
    assert_eq!(parse(&["--splice-backlog", "0"]).unwrap().splice_backlog, 0);
    assert_eq!(config.idle_timeout, Some(Duration::from_millis(500)));
    assert_eq!(
        config.busy_poll,
        BusyPollSetting::Window(Duration::from_micros(200))
    );
    assert_eq!(
        parse(&["--busy-poll", "0"]).unwrap().busy_poll,
        BusyPollSetting::Window(Duration::ZERO)
    );
    assert_eq!(
        parse(&["--busy-poll", "auto"]).unwrap().busy_poll,
        BusyPollSetting::Auto
    );
    assert_eq!(config.max_connections, 3);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(1));
    assert_eq!(config.stats_interval, None);
    assert_eq!(config.log_level, LevelFilter::Debug);
    assert_eq!(parse(&["-q"]).unwrap().log_level, LevelFilter::Error);
    assert_eq!(parse(&["--idle-timeout", "0"]).unwrap().idle_timeout, None);
    assert_eq!(
        parse(&["--metrics"]).unwrap().metrics,
        Some(DEFAULT_METRICS)
    );
    let metrics = |v: &str| parse(&["--metrics", v]).unwrap().metrics.unwrap();
    assert_eq!(metrics("0.0.0.0:80"), "0.0.0.0:80".parse().unwrap());
    assert_eq!(metrics("::1"), "[::1]:9187".parse().unwrap());
    assert_eq!(metrics("9000"), "127.0.0.1:9000".parse().unwrap());
    assert_eq!(
        parse(&["--log-format", "json"]).unwrap().log_format,
        LogFormat::Json
    );
    let modes = parse(&[
        "--mode",
        "upper",
        "--max-line",
        "20",
        "--workers",
        "3",
        "--prime-test",
        "miller-rabin",
    ])
    .unwrap();
    assert_eq!(modes.mode, Mode::Upper);
    assert_eq!(modes.max_line, Some(20));
    assert_eq!(modes.workers, Workers::Count(3));
    assert_eq!(modes.prime_test, PrimeTest::MillerRabin);
    assert_eq!(Workers::Auto.resolve(1), 1);
    assert_eq!(Workers::Auto.resolve(8), 7);
    assert_eq!(Workers::Count(2).resolve(8), 2);
}

// --metrics-allow-host repeats, and is kept lower-case without the
// final dot; a port or a bad name is a usage error naming the flag.
#[test]
fn metrics_allow_host_names() {
    let config = parse(&[
        "--metrics-allow-host",
        "Metrics.Example.org.",
        "--metrics-allow-host",
        "box-1.lan",
    ])
    .unwrap();
    assert_eq!(
        config.metrics_allow_hosts,
        vec!["metrics.example.org".to_string(), "box-1.lan".to_string()]
    );
    for bad in ["host:9187", "", "a b", "a..b", "*.example.org", "[::1]"] {
        let error = parse(&["--metrics-allow-host", bad]).expect_err(bad);
        assert_eq!(error.exit_code(), 2, "{bad}");
        assert!(error.to_string().contains("--metrics-allow-host"), "{bad}");
    }
}

// A link-local address keeps its interface as the socket's scope, on
// --bind and --metrics alike.
#[test]
fn link_local_addresses_keep_their_scope() {
    let listen = parse(&["--bind", "fe80::1%lo", "-p", "7"]).unwrap().listen;
    let std::net::SocketAddr::V6(v6) = listen else {
        panic!("{listen}")
    };
    assert_eq!((v6.ip().segments()[0], v6.port()), (0xfe80, 7));
    assert_ne!(v6.scope_id(), 0);
    let numeric = format!("fe80::1%{}", v6.scope_id());
    assert_eq!(
        parse(&["--bind", &numeric, "-p", "7"]).unwrap().listen,
        listen
    );
    let metrics = |v: &str| parse(&["--metrics", v]).unwrap().metrics.unwrap();
    assert_eq!(metrics("[fe80::1%lo]:7"), listen);
    assert_eq!(metrics("fe80::1%lo").port(), 9187);
}

// --udp is off by default; on, its rates take N/s and sizes per second;
// --allow repeats and lists networks.
#[test]
fn udp_and_allow_reach_the_config() {
    let config = parse(&[
        "--udp",
        "--udp-rate",
        "50/s",
        "--udp-bytes",
        "64K/s",
        "--allow",
        "127.0.0.1",
        "--allow",
        "10.0.0.0/8,::1/128",
    ])
    .unwrap();
    assert_eq!(
        config.udp,
        Some(UdpSettings {
            rate: 50,
            bytes: 65_536
        })
    );
    let allow = config.allow.expect("allow list");
    assert_eq!(allow.networks().len(), 3);
    assert!(allow.allows("10.2.3.4".parse().unwrap()));
    assert!(!allow.allows("127.0.0.2".parse().unwrap()));
    let defaults = parse(&["--udp"]).unwrap().udp.unwrap();
    assert_eq!((defaults.rate, defaults.bytes), (100, 1 << 20));
    assert_eq!(parse(&["--udp-rate", "7"]).unwrap().udp, None);
}

// --port takes lists and ranges; --listen adds addresses with their
// own modes, and alone replaces the default port; --bind absent means
// the dual-stack default; the admission and PROXY flags reach the config.
#[test]
fn listeners_and_admission_reach_the_config() {
    let config = parse(&["--port", "7000-7002,8443,7001", "--bind", "0.0.0.0"]).unwrap();
    assert_eq!(config.ports, vec![7000, 7001, 7002, 8443]);
    assert_eq!(config.listen, "0.0.0.0:7000".parse().unwrap());
    assert!(!config.dual_stack_default);
    let config = parse(&[
        "--listen",
        "127.0.0.1:9/discard",
        "--listen",
        "[::1]:19,20/chargen",
    ])
    .unwrap();
    assert_eq!(
        config.listen_more,
        vec![
            ListenGroup {
                ip: "127.0.0.1".parse().unwrap(),
                ports: vec![9],
                mode: Some(Mode::Discard)
            },
            ListenGroup {
                ip: "::1".parse().unwrap(),
                ports: vec![19, 20],
                mode: Some(Mode::Chargen)
            },
        ]
    );
    let both = parse(&["-p", "7", "--listen", "127.0.0.1:9"]).unwrap();
    assert_eq!(
        (both.ports.as_slice(), both.listen_more[0].mode),
        (&[7][..], None)
    );
    let config = parse(&[
        "--allow",
        "10.0.0.0/8,::1",
        "--allow",
        "192.0.2.7",
        "--max-per-source",
        "3",
        "--proxy-protocol",
        "--proxy-timeout",
        "0.5",
    ])
    .unwrap();
    let allow = config.allow.unwrap();
    assert_eq!(allow.networks().len(), 3);
    assert!(allow.allows("10.1.2.3".parse().unwrap()));
    assert!(!allow.allows("192.0.2.8".parse().unwrap()));
    assert_eq!(config.max_per_source, Some(3));
    assert_eq!(config.proxy_protocol, Some(Duration::from_millis(500)));
    assert_eq!(parse(&[]).unwrap().proxy_protocol, None);
    assert_eq!(
        parse(&["--proxy-protocol"]).unwrap().proxy_protocol,
        Some(Duration::from_secs(5))
    );
    let metrics = |v: &str| parse(&["--metrics", v]).unwrap().metrics.unwrap();
    assert_eq!(metrics(":9300"), "127.0.0.1:9300".parse().unwrap());
    assert_eq!(metrics("localhost:9300"), "127.0.0.1:9300".parse().unwrap());
    assert_eq!(metrics("localhost"), "127.0.0.1:9187".parse().unwrap());
}

// Listener mistakes are usage errors (exit 2) saying what is wrong.
#[test]
fn listener_mistakes_are_refused() {
    let refused = |args: &[&str], says: &str| {
        let argv = std::iter::once("echo-server").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv);
        let text = match cli {
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{args:?}");
                e.to_string()
            }
            Ok(cli) => cli
                .conflicts()
                .unwrap_or_else(|| panic!("{args:?} accepted")),
        };
        assert!(text.contains(says), "{args:?}: {text}");
    };
    refused(&["--port", "1-2000"], "1024");
    refused(&["--port", "10-5"], "--port");
    refused(&["--port", "0,7"], "--port");
    refused(
        &["--port", "1-600", "--listen", "127.0.0.1:1000-1600"],
        "1201 ports",
    );
    refused(
        &[
            "--port",
            "7",
            "--bind",
            "127.0.0.1",
            "--listen",
            "127.0.0.1:7/discard",
        ],
        "port 7 on 127.0.0.1 is named twice",
    );
    refused(&["--listen", "127.0.0.1:9/daytime"], "expected one of");
    refused(&["--listen", "224.0.0.1:9"], "multicast");
    refused(&["--listen", "localhost:9"], "--listen");
    refused(
        &["--listen", "127.0.0.1:9/framed", "--buffer-size", "10"],
        "framed needs",
    );
    refused(&["--allow", "10.1.0.0/8"], "--allow");
    refused(&["--allow", "300.0.0.0/8"], "--allow");
    refused(&["--max-per-source", "0"], "--max-per-source");
    refused(&["--proxy-timeout", "0"], "--proxy-timeout");
    refused(&["--metrics", "localhost:x"], "--metrics");
    refused(&["--metrics", ":x"], "--metrics");
}

// Sub-nanosecond durations round up: the idle timeout stays on.
#[test]
fn tiny_durations_do_not_turn_off() {
    let config = parse(&[
        "--idle-timeout",
        "0.0000000001",
        "--stats-interval",
        "0.00000000001",
    ])
    .unwrap();
    assert_eq!(config.idle_timeout, Some(Duration::from_nanos(1)));
    assert_eq!(config.stats_interval, Some(Duration::from_nanos(1)));
}

// Every setting reads ECHO_SERVER_ and its long name in upper snake
// case (what README and --help promise), and nothing else reads one
// but --config.
#[test]
fn every_option_has_its_environment_variable() {
    let cmd = Cli::command();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        match (id, arg.get_long()) {
            ("print_config" | "completions" | "help" | "version", _) | (_, None) => {
                assert_eq!(env, None, "{id}")
            }
            (_, Some(long)) => assert_eq!(
                env.as_deref(),
                Some(format!("ECHO_SERVER_{}", long.to_uppercase().replace('-', "_")).as_str()),
                "{id}"
            ),
        }
    }
}

// Out-of-range and malformed values are usage errors naming the flag.
#[test]
fn bad_values_are_rejected() {
    for args in [
        &["--port", "70000"][..],
        &["--port", "abc"],
        &["--bind", "localhost:1"],
        &["--backlog", "0"],
        &["--buffer-size", "0"],
        &["--buffer-size", "17M"],
        &["--idle-timeout", "-1"],
        &["--busy-poll", "-1"],
        &["--busy-poll", "100001"],
        &["--busy-poll", "0.5"],
        &["--busy-poll", "Auto"],
        &["--max-connections", "0"],
        &["--max-connections", "2000000"],
        &["--stats-interval", "soon"],
        &["--metrics", "localhost:x"],
        &["--bind", "224.0.0.1"],
        &["--bind", "255.255.255.255"],
        &["--bind", "ff02::1"],
        &["--bind", "fe80::1"],
        &["--bind", "fe80::1%no-such-if0"],
        &["--bind", "::1%lo"],
        &["--metrics", "224.0.0.1:9187"],
        &["--metrics", "255.255.255.255"],
        &["--metrics", "[ff02::1]:80"],
        &["--metrics", "[fe80::1%no-such-if0]:80"],
        &["--metrics", "[::1]:x"],
        &["--idle-timeout", "1e300"],
        &["--shutdown-timeout", "1e20"],
        &["--shutdown-timeout", "31536000.5"],
        &["--log-format", "xml"],
        &["--mode", "Echo"],
        &["--mode", "daytime"],
        &["--max-line", "0"],
        &["--max-line", "-3"],
        &["--workers", "0"],
        &["--workers", "many"],
        &["--prime-test", "fermat"],
        &["--udp-rate", "0"],
        &["--udp-rate", "0/s"],
        &["--udp-rate", "-5/s"],
        &["--udp-rate", "fast"],
        &["--udp-rate", "100/min"],
        &["--udp-rate", "20000000/s"],
        &["--udp-bytes", "0"],
        &["--udp-bytes", "1GB/s"],
        &["--udp-bytes", "-1K/s"],
        &["--udp-bytes", "17000M/s"],
        &["--allow", "10.1.0.0/8"],
        &["--allow", "10.0.0.0/33"],
        &["--allow", "example.org"],
    ] {
        let error = parse(args).expect_err(&format!("{args:?} accepted"));
        assert_eq!(error.exit_code(), 2, "{args:?}");
        let text = error.to_string();
        assert!(text.contains(args[0]), "{args:?}: {text}");
    }
}
