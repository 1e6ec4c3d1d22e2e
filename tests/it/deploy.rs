//! The deployment files (Dockerfile, compose.yaml, k8s/, dist/) against the
//! real binaries: each command line is read from its file and run as the
//! file says (arguments, environment, a non-root user via `setpriv`, a
//! read-only working directory), so a file that drifts from what the
//! binaries accept fails here. The only change: the listening addresses
//! become loopback ephemeral ones, as tests may not take fixed ports. The
//! validators (hadolint, kubernetes-validate, check-jsonschema,
//! systemd-analyze) check the files' own syntax; `.ci/run` installs them.

use crate::support::client::CLIENT;
use crate::support::*;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

#[allow(dead_code)]
#[path = "../../examples/gen-docs.rs"]
mod gen_docs;

/// The repository's root.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A directory of its own the non-root users can enter but not write.
struct ReadOnlyDir(PathBuf);

impl ReadOnlyDir {
    fn new(what: &str) -> ReadOnlyDir {
        Self::holding(what, &[])
    }

    /// One holding copies of `files`, readable by every user (as an
    /// install puts them in /etc): the checkout itself may sit in a
    /// directory only its owner can enter.
    fn holding(what: &str, files: &[&Path]) -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("echo-server-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        for file in files {
            let copy = dir.join(file.file_name().unwrap());
            std::fs::copy(file, &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        ReadOnlyDir(dir)
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a deployment file runs: the program and arguments, the variables,
/// the user, and where the binary's own files map to the built ones.
struct Launch {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    uid: u32,
    gid: u32,
}

impl Launch {
    /// The command as the file gives it, with its binaries replaced by the
    /// built ones, run through `setpriv` as the file's user, in `cwd`, with
    /// `overrides` (the listening addresses) last.
    fn command(&self, cwd: &Path, overrides: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .args(self.argv.iter().map(|a| built(a)))
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(overrides.iter().copied());
        cmd
    }
}

/// The built binary for a program name or install path the files use.
fn built(arg: &str) -> String {
    match arg {
        "echo-server" | "/usr/local/bin/echo-server" => BIN.to_string(),
        "echo-client" | "/usr/local/bin/echo-client" => CLIENT.to_string(),
        other => other.to_string(),
    }
}

/// The last stage of the Dockerfile: its instructions, continuation
/// lines joined, comments dropped.
fn dockerfile_runtime() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stage = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        if op == "FROM" {
            stage.clear();
        }
        stage.push((op.to_string(), rest.trim().to_string()));
    }
    stage
}

fn instruction<'a>(stage: &'a [(String, String)], op: &str) -> Option<&'a str> {
    stage
        .iter()
        .rev()
        .find(|(o, _)| o == op)
        .map(|(_, r)| r.as_str())
}

/// An exec-form (JSON array) instruction's words.
fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not exec form: {text}: {e}"))
}

/// The image's command line: ENTRYPOINT then CMD, its ENV, its USER.
fn image_launch(stage: &[(String, String)]) -> Launch {
    let mut argv = exec_form(instruction(stage, "ENTRYPOINT").expect("ENTRYPOINT"));
    if let Some(cmd) = instruction(stage, "CMD") {
        argv.extend(exec_form(cmd));
    }
    let env = stage
        .iter()
        .filter(|(op, _)| op == "ENV")
        .map(|(_, kv)| {
            let (k, v) = kv.split_once('=').expect("ENV KEY=VALUE");
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect();
    let user = instruction(stage, "USER").expect("USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    Launch {
        argv,
        env,
        uid: uid.parse().expect("numeric uid"),
        gid: gid.parse().expect("numeric gid"),
    }
}

/// The image's health check command (exec form after `CMD`).
fn healthcheck(stage: &[(String, String)]) -> Vec<String> {
    let text = instruction(stage, "HEALTHCHECK").expect("HEALTHCHECK");
    let (_, cmd) = text.split_once(" CMD ").expect("HEALTHCHECK ... CMD [...]");
    exec_form(cmd.trim())
}

/// Runs `argv` (the health check, with its address turned into `addr`)
/// as `launch`'s user; its exit code.
fn run_check(argv: &[String], addr: SocketAddr, launch: &Launch, cwd: &Path) -> Option<i32> {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| built(&a.replace("127.0.0.1:7878", &addr.to_string())))
        .collect();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={}", launch.uid),
        format!("--regid={}", launch.gid),
        "--clear-groups".into(),
        "--".into(),
    ])
    .args(&argv)
    .current_dir(cwd)
    .env_clear();
    run_cmd_to_exit(cmd, Duration::from_secs(20)).code()
}

/// Stops `srv` with SIGTERM as the runtime would, and checks it exits 0
/// well within `grace` (the runtime's wait before SIGKILL).
fn stop_within(srv: &mut Server, grace: Duration) {
    let t0 = Instant::now();
    let exit = srv.stop("TERM", grace + Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(
        t0.elapsed() < grace,
        "stop took {:?}, the runtime waits {grace:?}",
        t0.elapsed()
    );
}

/// A number of seconds from a setting's value ("5", "10s").
fn seconds(value: &str) -> f64 {
    value
        .trim()
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("seconds: {value}"))
}

// The image: ENTRYPOINT/CMD with its ENV as its USER (non-root) in a
// read-only directory serves; its HEALTHCHECK command passes against it
// and fails once it stopped; SIGTERM drains and exits 0 within the stop
// timeout Docker gives (10 s by default).
#[test]
fn image_command_line_and_health_check() {
    if !require_tool("deploy::image_command_line_and_health_check", "setpriv") {
        return;
    }
    let stage = dockerfile_runtime();
    let launch = image_launch(&stage);
    assert_ne!(launch.uid, 0, "the image must not run as root");
    assert_eq!(instruction(&stage, "EXPOSE"), Some("7878"));
    let copy = instruction(&stage, "COPY").expect("COPY of the binaries");
    assert!(
        copy.contains("/echo-server ") && copy.contains("/echo-client "),
        "{copy}"
    );
    let check = healthcheck(&stage);
    assert!(check.iter().any(|a| a == "127.0.0.1:7878"), "{check:?}");
    let cwd = ReadOnlyDir::new("image");
    let mut srv = Server::start_cmd(launch.command(
        &cwd.0,
        &[("ECHO_SERVER_PORT", "0"), ("ECHO_SERVER_BIND", "127.0.0.1")],
    ));
    let mut client = connect(srv.addr());
    echo_roundtrip(&mut client, b"from the image");
    drop(client);
    assert_eq!(
        run_check(&check, srv.addr(), &launch, &cwd.0),
        Some(0),
        "health check on a live server"
    );
    let addr = srv.addr();
    stop_within(&mut srv, Duration::from_secs(10));
    assert_ne!(
        run_check(&check, addr, &launch, &cwd.0),
        Some(0),
        "health check on a stopped server"
    );
}

/// The unit's `[Service]` settings, in order.
fn unit_settings() -> Vec<(String, String)> {
    read("dist/echo-server.service")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// The systemd unit: ExecStart with its Environment= and LimitNOFILE as a
// dynamic (non-root) user in a read-only directory, reading the example
// configuration file the unit names; SIGTERM exits 0 within
// TimeoutStopSec.
#[test]
fn unit_command_line_runs() {
    if !require_tool("deploy::unit_command_line_runs", "setpriv")
        || !require_tool("deploy::unit_command_line_runs", "prlimit")
    {
        return;
    }
    let settings = unit_settings();
    let get = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let config_path = "/etc/echo-server/echo-server.toml";
    let mut argv: Vec<String> = get("ExecStart")
        .expect("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(argv[0], "/usr/local/bin/echo-server");
    // The file the unit reads is the repository's example, as the unit's
    // install lines copy it there.
    let install = read("dist/echo-server.service");
    assert!(
        install.contains(&format!("dist/echo-server.toml {config_path}")),
        "install line"
    );
    let etc = ReadOnlyDir::holding("unit-etc", &[&repo("dist/echo-server.toml")]);
    for arg in argv.iter_mut() {
        if arg == config_path {
            *arg = etc.0.join("echo-server.toml").display().to_string();
        }
    }
    let env = settings
        .iter()
        .filter(|(k, _)| k == "Environment")
        .map(|(_, v)| {
            let (k, v) = v.split_once('=').expect("Environment=KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(get("DynamicUser"), Some("yes"));
    let launch = Launch {
        argv,
        env,
        uid: 65534,
        gid: 65534,
    };
    let nofile: u64 = get("LimitNOFILE")
        .expect("LimitNOFILE")
        .parse()
        .expect("a number");
    // Raising a hard limit needs CAP_SYS_RESOURCE, which a container may
    // not give even to root: then the machine's hard limit stands in.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    let nofile = if hard < nofile && !is_root_with_sys_resource() {
        eprintln!("LimitNOFILE={nofile} is above this machine's hard limit {hard}: using {hard}");
        hard
    } else {
        nofile
    };
    let cwd = ReadOnlyDir::new("unit");
    let inner = launch.command(
        &cwd.0,
        &[("ECHO_SERVER_PORT", "0"), ("ECHO_SERVER_BIND", "127.0.0.1")],
    );
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(&cwd.0)
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let mut srv = Server::start_cmd(cmd);
    assert_eq!(srv.nofile_soft_limit(), nofile);
    let mut client = connect(srv.addr());
    echo_roundtrip(&mut client, b"from the unit");
    drop(client);
    let grace = seconds(get("TimeoutStopSec").expect("TimeoutStopSec"));
    stop_within(&mut srv, Duration::from_secs_f64(grace));
}

/// Whether this process may raise its hard limits (root with
/// CAP_SYS_RESOURCE, bit 24 of the effective set).
fn is_root_with_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    is_root() && caps & (1 << 24) != 0
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {y:?}"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .map(|s| str_of(s, "list item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The Deployment's one container.
fn deployment() -> (Yaml, Yaml) {
    let doc = yaml("k8s/deployment.yaml").remove(0);
    let container = doc["spec"]["template"]["spec"]["containers"][0].clone();
    (doc, container)
}

fn container_env(container: &Yaml) -> Vec<(String, String)> {
    container["env"]
        .as_vec()
        .map(|v| {
            v.iter()
                .map(|e| {
                    (
                        str_of(&e["name"], "env name").into(),
                        str_of(&e["value"], "env value").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// The Deployment: the image's ENTRYPOINT with the container's args, the
// image's ENV with the container's env over it, as runAsUser, in a
// read-only directory: serves, and its probes' path answers 200 on the
// probes' port; SIGTERM exits 0 well within the grace period.
#[test]
fn deployment_command_line_and_probes() {
    if !require_tool("deploy::deployment_command_line_and_probes", "setpriv") {
        return;
    }
    let (doc, container) = deployment();
    let pod = &doc["spec"]["template"]["spec"];
    let stage = dockerfile_runtime();
    let image = image_launch(&stage);
    let mut argv = exec_form(instruction(&stage, "ENTRYPOINT").unwrap());
    argv.extend(strings(&container["args"]));
    let mut env = image.env.clone();
    for (k, v) in container_env(&container) {
        env.retain(|(old, _)| *old != k);
        env.push((k, v));
    }
    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
    let launch = Launch {
        argv,
        env: env.clone(),
        uid: security["runAsUser"].as_i64().expect("runAsUser") as u32,
        gid: security["runAsGroup"].as_i64().expect("runAsGroup") as u32,
    };
    assert_ne!(launch.uid, 0);
    // The probes' port is where the endpoint listens.
    let probe = &container["readinessProbe"]["httpGet"];
    let port_name = str_of(&probe["port"], "probe port");
    let ports = container["ports"].as_vec().expect("ports");
    let port_of = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    let metrics = env
        .iter()
        .find(|(k, _)| k == "ECHO_SERVER_METRICS")
        .expect("metrics on")
        .1
        .clone();
    assert_eq!(
        metrics.rsplit(':').next().unwrap().parse::<i64>().unwrap(),
        port_of(port_name)
    );
    assert_eq!(port_of("echo"), 7878);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], probe["path"]);
    let cwd = ReadOnlyDir::new("deployment");
    let mut srv = Server::start_cmd(launch.command(
        &cwd.0,
        &[
            ("ECHO_SERVER_PORT", "0"),
            ("ECHO_SERVER_BIND", "127.0.0.1"),
            ("ECHO_SERVER_METRICS", "127.0.0.1:0"),
        ],
    ));
    let line = srv.wait_for("Metrics on http://", START_TIMEOUT);
    let endpoint: SocketAddr = line
        .trim_start_matches("Metrics on http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reply = endpoint::get(endpoint, str_of(&probe["path"], "probe path"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut client = connect(srv.addr());
    echo_roundtrip(&mut client, b"from the pod");
    drop(client);
    // The kubelet waits terminationGracePeriodSeconds after the preStop
    // hook started: the pause plus the drain must fit in it.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace") as f64;
    let pause = strings(&container["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(pause[0], "sleep");
    let drain = seconds(
        &env.iter()
            .find(|(k, _)| k == "ECHO_SERVER_SHUTDOWN_TIMEOUT")
            .expect("shutdown timeout")
            .1,
    );
    assert!(seconds(&pause[1]) + drain + 2.0 <= grace, "grace {grace} s");
    stop_within(
        &mut srv,
        Duration::from_secs_f64(grace - seconds(&pause[1])),
    );
}

// The PROXY variant: the Deployment's command line with the patch's args
// (as `kubectl patch` leaves it) serves behind a load balancer that sends
// a PROXY v1 header: the echo carries only the data, and the client the
// header names is the one logged.
#[test]
fn proxy_protocol_patch_serves_behind_a_load_balancer() {
    if !require_tool(
        "deploy::proxy_protocol_patch_serves_behind_a_load_balancer",
        "setpriv",
    ) {
        return;
    }
    let (doc, container) = deployment();
    let pod = &doc["spec"]["template"]["spec"];
    let stage = dockerfile_runtime();
    let image = image_launch(&stage);
    let patch = yaml("k8s/proxy-protocol/deployment-patch.yaml").remove(0);
    let patched = &patch["spec"]["template"]["spec"]["containers"][0];
    let mut argv = exec_form(instruction(&stage, "ENTRYPOINT").unwrap());
    argv.extend(strings(&patched["args"]));
    let mut env = image.env.clone();
    for (k, v) in container_env(&container) {
        env.retain(|(old, _)| *old != k);
        env.push((k, v));
    }
    let security = &pod["securityContext"];
    let launch = Launch {
        argv,
        env,
        uid: security["runAsUser"].as_i64().expect("runAsUser") as u32,
        gid: security["runAsGroup"].as_i64().expect("runAsGroup") as u32,
    };
    let cwd = ReadOnlyDir::new("proxy-patch");
    let mut srv = Server::start_cmd(launch.command(
        &cwd.0,
        &[
            ("ECHO_SERVER_PORT", "0"),
            ("ECHO_SERVER_BIND", "127.0.0.1"),
            ("ECHO_SERVER_METRICS", "127.0.0.1:0"),
        ],
    ));
    let mut client = connect(srv.addr());
    let header = format!(
        "PROXY TCP4 203.0.113.7 127.0.0.1 40001 {}\r\n",
        srv.addr().port()
    );
    client.write_all(header.as_bytes()).unwrap();
    echo_roundtrip(&mut client, b"through the load balancer");
    let line = srv.wait_for("[CONNECT] 203.0.113.7:40001", Duration::from_secs(5));
    // The load balancer's own address follows, for the record.
    assert!(line.contains("(via 127.0.0.1:"), "{line}");
    // A client that sends no header is refused, not echoed.
    let mut direct = connect(srv.addr());
    direct.write_all(b"no header here\r\n").unwrap();
    // (expect_closed fails on any byte back.)
    expect_closed(&mut direct, Duration::from_secs(5));
    drop(client);
    stop_within(&mut srv, Duration::from_secs(10));
}

// What the issue asks of the manifests that no run shows: replicas, the
// pod's hardening and resources, the Service, the PDB and HPA pointing at
// the Deployment's pods, and the PROXY patch keeping the base's args.
#[test]
fn manifests_fit_together() {
    let (doc, container) = deployment();
    assert_eq!(doc["spec"]["replicas"].as_i64(), Some(2));
    let labels = &doc["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&doc["spec"]["selector"]["matchLabels"], labels);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    for kind in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(
                !container["resources"][kind][what].is_badvalue(),
                "{kind}.{what}"
            );
        }
    }
    let service = yaml("k8s/service.yaml").remove(0);
    assert_eq!(service["spec"]["type"].as_str(), Some("LoadBalancer"));
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(7878));
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("echo")
    );
    for path in ["k8s/pdb.yaml", "k8s/hpa.yaml"] {
        let doc = yaml(path).remove(0);
        let selects = &doc["spec"]["selector"]["matchLabels"];
        let target = &doc["spec"]["scaleTargetRef"]["name"];
        assert!(
            selects == labels || target.as_str() == Some("echo-server"),
            "{path}"
        );
    }
    let proxy = yaml("k8s/proxy-protocol/service.yaml").remove(0);
    assert_eq!(
        proxy["metadata"]["annotations"]
            ["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"]
            .as_str(),
        Some("*")
    );
    let patch = yaml("k8s/proxy-protocol/deployment-patch.yaml").remove(0);
    let patched = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(patched["name"], container["name"]);
    let mut want = strings(&container["args"]);
    want.push("--proxy-protocol".into());
    assert_eq!(
        strings(&patched["args"]),
        want,
        "the patch replaces args: it must keep the base's"
    );
}

// compose.yaml: the server as the image runs it with the service's
// environment serves; the client's command, pointed at it, pings it once a
// second and every echo comes back; the endpoint is published on the
// host's loopback only; the stop grace period covers the drain.
#[test]
fn compose_services_run() {
    if !require_tool("deploy::compose_services_run", "setpriv") {
        return;
    }
    let doc = yaml("compose.yaml").remove(0);
    let server = &doc["services"]["server"];
    let stage = dockerfile_runtime();
    let mut launch = image_launch(&stage);
    let environment = server["environment"].as_hash().expect("environment");
    for (k, v) in environment {
        let k = str_of(k, "variable").to_string();
        launch.env.retain(|(old, _)| *old != k);
        launch.env.push((k, str_of(v, "value").to_string()));
    }
    let ports = strings(&server["ports"]);
    let metrics = &launch
        .env
        .iter()
        .find(|(k, _)| k == "ECHO_SERVER_METRICS")
        .expect("metrics")
        .1;
    let metrics_port = metrics.rsplit(':').next().unwrap();
    assert!(
        ports.contains(&format!("127.0.0.1:{metrics_port}:{metrics_port}")),
        "the endpoint published on loopback: {ports:?}"
    );
    assert!(!ports
        .iter()
        .any(|p| p.ends_with(&format!(":{metrics_port}")) && !p.starts_with("127.0.0.1:")));
    let drain = seconds(
        &launch
            .env
            .iter()
            .find(|(k, _)| k == "ECHO_SERVER_SHUTDOWN_TIMEOUT")
            .expect("timeout")
            .1,
    );
    assert!(seconds(str_of(&server["stop_grace_period"], "stop_grace_period")) > drain);
    let cwd = ReadOnlyDir::new("compose");
    let srv = Server::start_cmd(launch.command(
        &cwd.0,
        &[
            ("ECHO_SERVER_PORT", "0"),
            ("ECHO_SERVER_BIND", "127.0.0.1"),
            ("ECHO_SERVER_METRICS", "127.0.0.1:0"),
        ],
    ));
    let client = &doc["services"]["client"];
    let mut argv = strings(&client["entrypoint"]);
    argv.extend(strings(&client["command"]));
    let argv: Vec<String> = argv
        .iter()
        .map(|a| built(&a.replace("server:7878", &srv.addr().to_string())))
        .collect();
    let out_path =
        std::env::temp_dir().join(format!("echo-server-compose-{}.out", std::process::id()));
    let child = KillOnDrop(
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Three verified echoes, a second apart, then stop the pinging.
    let replies = |text: &str| {
        text.lines()
            .filter(|l| l.contains(" bytes from ") && l.contains("seq="))
            .count()
    };
    let t0 = Instant::now();
    let seen = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out_path).is_ok_and(|t| replies(&t) >= 3)
    });
    let elapsed = t0.elapsed();
    drop(child);
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(seen, "the client did not ping 3 times:\n{text}");
    assert!(
        elapsed >= Duration::from_millis(1900),
        "3 probes in {elapsed:?}: not one a second"
    );
    assert_eq!(
        srv.events("CONNECT").len(),
        1,
        "one connection carries the probes"
    );
}

// hadolint finds nothing in the Dockerfile.
#[test]
fn hadolint_passes() {
    if !require_tool("deploy::hadolint_passes", "hadolint") {
        return;
    }
    let mut cmd = Command::new("hadolint");
    cmd.arg(repo("Dockerfile"));
    validate(cmd);
}

/// Runs a validator; asserts it succeeded and returns what it printed.
fn validate(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

// Every manifest, and the Deployment with the PROXY patch applied, is
// valid for kubernetes-validate's Kubernetes version, strictly (no field
// it does not know).
#[test]
fn kubernetes_validate_passes() {
    if !require_tool("deploy::kubernetes_validate_passes", "kubernetes-validate") {
        return;
    }
    let (mut doc, _) = deployment();
    let patch = yaml("k8s/proxy-protocol/deployment-patch.yaml").remove(0);
    let args = patch["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    set_args(&mut doc, args);
    let mut text = String::new();
    YamlEmitter::new(&mut text).dump(&doc).unwrap();
    let patched =
        std::env::temp_dir().join(format!("echo-server-patched-{}.yaml", std::process::id()));
    std::fs::write(&patched, text).unwrap();
    let mut files: Vec<PathBuf> = ["deployment", "service", "pdb", "hpa"]
        .iter()
        .map(|f| repo(&format!("k8s/{f}.yaml")))
        .collect();
    files.push(repo("k8s/proxy-protocol/service.yaml"));
    files.push(patched.clone());
    let mut cmd = Command::new("kubernetes-validate");
    cmd.arg("--strict").args(&files);
    let text = validate(cmd);
    let _ = std::fs::remove_file(&patched);
    assert_eq!(text.matches(" passed ").count(), files.len(), "{text}");
}

/// Replaces the first container's args in a Deployment document.
fn set_args(doc: &mut Yaml, args: Yaml) {
    let key = |k: &str| Yaml::String(k.into());
    let Yaml::Hash(top) = doc else {
        panic!("not a mapping")
    };
    let Some(Yaml::Hash(spec)) = top.get_mut(&key("spec")) else {
        panic!("spec")
    };
    let Some(Yaml::Hash(template)) = spec.get_mut(&key("template")) else {
        panic!("template")
    };
    let Some(Yaml::Hash(pod)) = template.get_mut(&key("spec")) else {
        panic!("pod spec")
    };
    let Some(Yaml::Array(containers)) = pod.get_mut(&key("containers")) else {
        panic!("containers")
    };
    let Yaml::Hash(container) = &mut containers[0] else {
        panic!("container")
    };
    container.insert(key("args"), args);
}

// compose.yaml is valid against the Compose specification's schema.
#[test]
fn compose_schema_passes() {
    if !require_tool("deploy::compose_schema_passes", "check-jsonschema") {
        return;
    }
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo("compose.yaml"));
    validate(cmd);
}

// systemd-analyze verify finds nothing in the unit, its ExecStart pointed
// at the built binary (verify checks that the program exists). The man
// page check is off: the page is generated, not installed, here.
#[test]
fn systemd_analyze_verify_passes() {
    if !require_tool("deploy::systemd_analyze_verify_passes", "systemd-analyze") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("echo-server-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = read("dist/echo-server.service")
        .replace("/usr/local/bin/echo-server", BIN)
        .replace(
            "/etc/echo-server/echo-server.toml",
            &repo("dist/echo-server.toml").display().to_string(),
        );
    let path = dir.join("echo-server.service");
    std::fs::write(&path, unit).unwrap();
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no"]).arg(&path);
    let text = validate(cmd);
    let _ = std::fs::remove_dir_all(&dir);
    // Warnings (an unknown key, a bad value) do not fail verify: none allowed.
    assert!(text.trim().is_empty(), "{text}");
}

// `cargo install --path .` installs both binaries: both are [[bin]]
// targets that need no feature.
#[test]
fn cargo_install_gets_both_binaries() {
    let manifest = read("Cargo.toml");
    for name in ["echo-server", "echo-client"] {
        assert!(
            manifest.contains(&format!("[[bin]]\nname = \"{name}\"")),
            "{name}"
        );
    }
    assert!(!manifest.contains("required-features"));
}

// The generator writes a man page per binary and client mode and bash,
// zsh and fish completions for both, from the clap definitions: every
// long option is in them, with the server's variables in its page.
#[test]
fn man_pages_and_completions_are_generated() {
    let out = std::env::temp_dir().join(format!("echo-server-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let written = gen_docs::generate(&out).unwrap();
    let text =
        |p: &str| std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    for cmd in gen_docs::commands() {
        let name = cmd.get_name().to_string();
        let page = text(&format!("man/{name}.1"));
        assert!(page.contains(&format!("\n.TH {name} 1 ")), "{name}");
        let mut all = vec![cmd.clone()];
        all.extend(cmd.get_subcommands().cloned());
        for sub in &all {
            let page = if sub.get_name() == name {
                page.clone()
            } else {
                text(&format!("man/{name}-{}.1", sub.get_name()))
            };
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    assert!(
                        page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                        "{name} {}: --{long}",
                        sub.get_name()
                    );
                    let bash = text(&format!("completions/{name}.bash"));
                    assert!(bash.contains(&format!("--{long}")), "bash: --{long}");
                    let fish = text(&format!("completions/{name}.fish"));
                    assert!(fish.contains(&format!("-l {long}")), "fish: --{long}");
                    let zsh = text(&format!("completions/_{name}"));
                    assert!(zsh.contains(&format!("--{long}")), "zsh: --{long}");
                }
                if let Some(env) = arg.get_env() {
                    let env = env.to_string_lossy().replace('_', "\\_");
                    assert!(
                        page.contains(&env) || page.contains(&env.replace("\\_", "_")),
                        "{env}"
                    );
                }
            }
        }
    }
    // The bash scripts parse (bash is what the tests' own helpers run in).
    for script in written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bash"))
    {
        let st = Command::new("bash").arg("-n").arg(script).status().unwrap();
        assert!(st.success(), "{}", script.display());
    }
    let _ = std::fs::remove_dir_all(&out);
}
