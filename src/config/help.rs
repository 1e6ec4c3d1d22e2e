//! The end of `echo-server --help`: examples and exit codes (the codes
//! are those of main.rs and README's "Exit codes"), before where settings
//! come from.

/// Examples and exit codes, then `sources` (where settings come from).
pub fn after_help(sources: &str) -> String {
    format!(
        "\
Examples:
  echo-server                               port 7878 (--bind for the address)
  echo-server --port 0                      a free port (the banner shows it)
  echo-server --bind :: --port 9000         both families on port 9000
  echo-server --metrics --stats-interval 10 dashboard on http://127.0.0.1:9187/
  nc 127.0.0.1 7878                         then type: every line comes back
  echo-client ping 127.0.0.1:7878           RTT and loss (installed beside it)

Exit codes:
  0        stopped cleanly (Ctrl+C or SIGTERM, pending echoes flushed)
  1        could not start (the message says why and what to do)
  2        bad command line, ECHO_SERVER_* variable or --config file
  128 + N  stopped at once by a second stop signal N (130 for Ctrl+C,
           143 for SIGTERM)
These hold whatever stdout and stderr are: full, closed or read by nobody.

{sources}"
    )
}
