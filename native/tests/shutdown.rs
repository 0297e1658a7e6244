//! The `hello-edge` binary stopped by SIGTERM while clients are still arriving, as `docker stop`,
//! systemd or a plain `kill` stop it (none of which pauses first, as a Kubernetes preStop does):
//! every connection the server accepted gets its answer, and what the kernel had queued for it
//! is accepted too.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::host::{Host, Served, Stopped};
use support::native::{self, NativeBinary};
use support::process::raise_open_file_limit;
use support::scenarios::{self, Arrivals};

/// Clients arrive as in a rollout (`Arrivals::WHILE_CLIENTS_ARRIVE`: 300, one every 2 ms, each
/// sending its request 30 ms after it connected), and SIGTERM comes 200 ms in: some have
/// connected and not yet sent, some are sending, the later ones find the listener closed. Every
/// client the server accepted is answered, with `connection: close`, and the server exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_connection_it_accepted_while_clients_arrive() {
    raise_open_file_limit(2048);
    let mut server = binary(&["--delay-ms", "500"]).await;
    let addr = server.addr();
    let signal = server.process().signal_later(Signal::SIGTERM);
    let arrivals =
        scenarios::arrive_through_a_stop(addr, Arrivals::WHILE_CLIENTS_ARRIVE, signal).await;
    let Stopped { status, log } = server.stop().await;
    native::assert_answered_through_a_stop("SIGTERM while 300 arrive", &arrivals, &log);
    assert!(status.success(), "exit status {status}:\n{log}");
}

/// With `--max-connections 20`, 60 clients connect and send their requests: 20 are served and 40
/// wait in the listen backlog, as at the cap they should. SIGTERM then comes: the 40 are taken
/// from the backlog before the listener closes, and all 60 are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_serves_the_connections_waiting_in_the_backlog() {
    let mut server = binary(&["--delay-ms", "500", "--max-connections", "20"]).await;
    let addr = server.addr();
    let signal = server.process().signal_later(Signal::SIGTERM);
    let at_once = Arrivals {
        count: 60,
        pace: Duration::ZERO,
        send_after: Duration::ZERO,
        stop_after: Duration::from_millis(250),
    };
    let arrivals = scenarios::arrive_through_a_stop(addr, at_once, signal).await;
    let Stopped { status, log } = server.stop().await;
    let answered = native::assert_answered_through_a_stop("SIGTERM at the cap", &arrivals, &log);
    assert_eq!(answered, 60, "{answered} of 60 answered:\n{log}");
    assert!(status.success(), "exit status {status}:\n{log}");
}

/// The `hello-edge` binary with these flags, logging each connection it accepts.
async fn binary(flags: &[&str]) -> Served {
    let binary = Path::new(env!("CARGO_BIN_EXE_hello-edge"));
    NativeBinary::start_logging_connections(binary, flags, None).await
}
