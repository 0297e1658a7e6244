//! `cargo xtask check-run`: the README's run command, as a newcomer types it on a fresh clone.
//! It must build, say `Serving http://127.0.0.1:8000`, answer `/hello/world` with the greeting
//! after about one 500 ms delay, and exit 0 on SIGTERM (`cargo run` replaces itself with the
//! server, so the signal reaches it). The host builds a newcomer may type next, `cargo build`
//! and `cargo build --workspace`, must work too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the README says the server listens.
const ADDR: &str = "127.0.0.1:8000";

/// Runs the check from `root`.
pub fn check(root: &Path) -> Result<(), String> {
    if TcpStream::connect(ADDR).is_ok() {
        return Err(format!(
            "something already listens on {ADDR}: the check would talk to it"
        ));
    }
    let words: Vec<&str> = super::RUN_COMMAND.split_whitespace().collect();
    println!("--- {}", super::RUN_COMMAND);
    let started = Instant::now();
    let mut child = Command::new(words[0])
        .args(&words[1..])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run `{}`: {err}", super::RUN_COMMAND))?;

    // The server prints its address once it listens; building first may take minutes.
    let stdout = child.stdout.take().unwrap();
    let (lines, said) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let serving = format!("Serving http://{ADDR}");
    loop {
        match said.recv_timeout(Duration::from_secs(1800)) {
            Ok(line) if line == serving => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                return Err(format!("never said `{serving}`"));
            }
        }
    }
    println!("serving after {:.1} s", started.elapsed().as_secs_f64());

    let asked = Instant::now();
    let answer = get("/hello/world");
    let took = asked.elapsed();
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|err| format!("kill: {err}"))?;
    let status = child.wait().map_err(|err| err.to_string())?;

    let answer = answer?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200 OK") || body != "<h1>hello, world!</h1>" {
        return Err(format!("GET /hello/world answered:\n{answer}"));
    }
    // The default delay is 500 ms; a slow machine gets two seconds on top.
    if !(Duration::from_millis(500)..Duration::from_millis(2500)).contains(&took) {
        return Err(format!("answered after {took:?}, want about 500 ms"));
    }
    if !stopped.success() || !status.success() {
        return Err(format!("exit status {status} after SIGTERM, want 0"));
    }
    println!("ok: served /hello/world in {took:?}, exited 0 on SIGTERM");

    for build in ["cargo build", "cargo build --workspace"] {
        let words: Vec<&str> = build.split_whitespace().collect();
        let status = Command::new(words[0])
            .args(&words[1..])
            .current_dir(root)
            .status()
            .map_err(|err| format!("cannot run `{build}`: {err}"))?;
        if !status.success() {
            return Err(format!("`{build}` failed: {status}"));
        }
        println!("ok: {build}");
    }
    Ok(())
}

/// `GET path` over HTTP/1.1 with `connection: close`: the whole answer as text.
fn get(path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(ADDR).map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|err| err.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {ADDR}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|err| format!("send: {err}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|err| format!("read: {err}"))?;
    Ok(answer)
}
