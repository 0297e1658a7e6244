//! The `hello-edge` binary's command line, environment and logs, as a user meets them: bad
//! values are refused with a message that quotes them (and nothing panics), the delay comes from
//! the environment, logs carry no colour codes off a terminal, and `--log-format json` writes one
//! JSON object per line.

use std::path::Path;
use std::process::Output;

use hello_edge_native::env;
use support::host::{Host, Stopped};
use support::native::NativeBinary;
use support::scenarios;

/// Runs the binary with these arguments and environment, no stdin, to its end.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hello-edge"));
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("run hello-edge")
}

/// Arguments, environment variables, and what the error must quote.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Each out-of-range number, given as a flag or a variable, is refused before the server starts:
/// exit status 2 (clap's usage error, not a panic's 101), and a message that quotes the value.
#[tokio::test]
async fn out_of_range_numbers_are_refused_with_the_value_quoted() {
    const HUGE: &str = "18446744073709551615";
    let cases: [Case; 7] = [
        (&["--max-connections", HUGE], &[], HUGE),
        (&["--max-connections", "0"], &[], "'0'"),
        (&["--max-connections", "2000000"], &[], "2000000"),
        (&[], &[(env::MAX_CONNECTIONS, HUGE)], HUGE),
        (
            &[],
            &[(env::DELAY_MS, "99999999999999999999999")],
            "99999999999999999999999",
        ),
        (&["--shutdown-grace-secs", HUGE], &[], HUGE),
        (&["--header-timeout-secs", "0"], &[], "'0'"),
    ];
    for (args, env, quoted) in cases {
        let out = run(args, env).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(quoted), "{args:?} {env:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} {env:?}: {stderr}");
    }
}

/// The delay comes from `HELLO_EDGE_DELAY_MS`, and is waited once.
#[tokio::test]
async fn the_delay_comes_from_the_environment() {
    let binary = Path::new(env!("CARGO_BIN_EXE_hello-edge"));
    let millis = scenarios::CONFIGURED_DELAY.as_millis().to_string();
    let mut server = NativeBinary::start_with(binary, &[], &[(env::DELAY_MS, &millis)], None).await;
    scenarios::assert_waits_the_configured_delay(server.addr(), &server.label()).await;
    let Stopped { status, log } = server.stop().await;
    assert!(status.success(), "{status}: {log}");
}

/// Off a terminal (here stderr is a pipe), the log lines carry no ANSI colour codes.
#[tokio::test]
async fn logs_off_a_terminal_carry_no_colour_codes() {
    let log = serve_and_stop(&[]).await;
    assert!(log.contains("listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

/// `--log-format json` writes each log line as one JSON object, with its level and message.
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let stdout_and_stderr = serve_and_stop(&["--log-format", "json"]).await;
    let lines: Vec<_> = stdout_and_stderr
        .lines()
        .filter(|line| !line.starts_with("Serving http://"))
        .collect();
    assert!(lines.len() >= 2, "{stdout_and_stderr}");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line:?}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
}

/// Starts the binary with these flags and no NO_COLOR, stops it with SIGTERM right after it
/// says it serves (which must drain, not kill it); its whole output, stdout and stderr.
async fn serve_and_stop(flags: &[&str]) -> String {
    let binary = Path::new(env!("CARGO_BIN_EXE_hello-edge"));
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(flags)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG");
    let mut server = NativeBinary::from_command(command).await;
    let Stopped { status, log } = server.stop().await;
    assert!(status.success(), "{status}: {log}");
    log
}
