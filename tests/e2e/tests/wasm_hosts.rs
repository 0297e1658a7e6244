//! Every component under every real wasm host, against the same conformance table as the native
//! server, over real TCP; and, for each, the host's own log, which must show no guest failure.
//!
//! The hosts and the components are two lists below: each host runs every component it serves.
//! The hosts are the catalogue's [`WASM_HOSTS`], each a value; a test below checks that the list
//! here names every one of them, so a new host is its [`WasmHost`] implementation and its line in
//! [`WASM_HOSTS`] (in `tests/support`), and one line here.

use std::time::Duration;

use http::StatusCode;
use nix::sys::signal::Signal;
use support::catalogue::WASM_HOSTS;
use support::client::{self, Protocol};
use support::component::{COMPONENTS, Component, WASIP2, WASIP3};
use support::conformance;
use support::host::{Host, Launch, Stopped, WasmHost, assert_clean};
use support::process::Process;
use support::scenarios;
use support::spin::SpinUp;
use support::wash::WashDev;
use support::wasmtime::WasmtimeServe;

/// The delay every host is configured with unless a test says otherwise: the default.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// The same tests for each host and each component it serves; only the host and the `.wasm`
/// differ.
macro_rules! host_tests {
    ($($host:ident: $kind:expr => [$($component:ident: $which:expr),* $(,)?]),* $(,)?) => {
        /// The hosts this file tests, by their catalogue names.
        const TESTED: &[&str] = &[$(stringify!($host)),*];

        $(
            mod $host {
                use super::*;
                $(
                    mod $component {
                        use super::*;

                        /// Every case of the conformance table answers as it does natively,
                        /// with the default delay (no variable set), and the host logs no guest
                        /// failure.
                        #[tokio::test]
                        async fn conforms_to_the_table() {
                            crate::conforms_to_the_table(&$kind, &$which).await;
                        }

                        /// 200 requests that each wait 500 ms overlap on the host's event loop:
                        /// together they take about one delay.
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn two_hundred_requests_overlap() {
                            crate::two_hundred_requests_overlap(&$kind, &$which).await;
                        }

                        /// Clients that leave before their answer end their request quietly: no
                        /// guest failure in the host's log, and the next client is served.
                        #[tokio::test]
                        async fn clients_that_leave_early_leave_the_log_clean() {
                            crate::clients_that_leave_early_leave_the_log_clean(&$kind, &$which)
                                .await;
                        }

                        /// The delay is read from the component's environment, and waited once.
                        #[tokio::test]
                        async fn the_delay_comes_from_the_environment() {
                            crate::the_delay_comes_from_the_environment(&$kind, &$which).await;
                        }

                        /// An invalid delay is a clear 500 naming the variable, and is logged.
                        #[tokio::test]
                        async fn an_invalid_delay_is_a_clear_500() {
                            crate::an_invalid_delay_is_a_clear_500(&$kind, &$which).await;
                        }
                    }
                )*
            }
        )*
    };
}

// Each host, and the components it serves. Spin 4.0 knows only a release candidate of WASI 0.3,
// so it serves the WASI 0.2 component alone (and refuses the other: see below).
host_tests! {
    wasmtime: WasmtimeServe => [wasip2: WASIP2, wasip3: WASIP3],
    wash: WashDev => [wasip2: WASIP2, wasip3: WASIP3],
    spin: SpinUp::LATEST => [wasip2: WASIP2, wasip3: WASIP3],
    spin_4_0: SpinUp::V4_0 => [wasip2: WASIP2],
}

/// The list above is the catalogue's: every host of [`WASM_HOSTS`] is tested here, each with
/// every component it serves, and no other.
#[test]
fn every_host_of_the_catalogue_is_tested() {
    let catalogue: Vec<String> = WASM_HOSTS
        .iter()
        .map(|host| host.name().replace(['-', '.'], "_"))
        .collect();
    assert_eq!(TESTED, catalogue, "the hosts tested here, and WASM_HOSTS");
    assert!(!WasmHost::serves(&SpinUp::V4_0, &WASIP3));
    for host in WASM_HOSTS {
        assert!(host.serves(&WASIP2), "{}", host.name());
    }
}

/// Starts `host` serving `component` with these environment variables.
async fn start(host: &dyn WasmHost, component: &Component, env: &[(&str, &str)]) -> Box<dyn Host> {
    host.start(component, &Launch::with_env(env)).await
}

async fn conforms_to_the_table(host: &dyn WasmHost, component: &Component) {
    let mut host = start(host, component, &[]).await;
    let report = conformance::run_on(host.as_ref(), Protocol::Http1, DELAY).await;
    let label = host.label();
    let log = host.stop().await.log;
    assert!(report.is_empty(), "mismatches on {label}:\n{report}");
    assert_clean(&label, &log);
}

async fn two_hundred_requests_overlap(host: &dyn WasmHost, component: &Component) {
    let mut host = start(host, component, &[(hello_edge::Config::DELAY_ENV, "500")]).await;
    scenarios::assert_overlap(host.addr(), 200, DELAY, Duration::from_secs(3)).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await.log);
}

async fn clients_that_leave_early_leave_the_log_clean(host: &dyn WasmHost, component: &Component) {
    let mut host = start(host, component, &[]).await;
    let report = scenarios::leave_early(host.as_ref(), 20, DELAY).await;
    let label = host.label();
    let log = host.stop().await.log;
    assert!(report.is_empty(), "on {label}:\n{report}");
    assert_clean(&label, &log);
}

async fn the_delay_comes_from_the_environment(host: &dyn WasmHost, component: &Component) {
    let millis = scenarios::CONFIGURED_DELAY.as_millis().to_string();
    let mut host = start(host, component, &[(hello_edge::Config::DELAY_ENV, &millis)]).await;
    scenarios::assert_waits_the_configured_delay(host.addr(), &host.label()).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await.log);
}

async fn an_invalid_delay_is_a_clear_500(host: &dyn WasmHost, component: &Component) {
    let mut host = start(host, component, &[(hello_edge::Config::DELAY_ENV, "soon")]).await;
    let answer = client::get(host.addr(), "/hello/x").await.unwrap();
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = answer.text();
    assert!(
        text.contains("HELLO_EDGE_DELAY_MS: delay &quot;soon&quot; is not a whole number"),
        "{text}"
    );
    assert!(
        answer.elapsed < Duration::from_millis(250),
        "a misconfigured host answers at once, took {:?}",
        answer.elapsed
    );
    // Whatever the request: a path no route names, a method the routes do not answer (one the
    // `http` crate has no constant for), a name that cannot be greeted.
    for (method, path) in [("GET", "/nope"), ("PURGE", "/"), ("GET", "/hello/%ZZ")] {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = client::send(host.addr(), Protocol::Http1, method.clone(), path, &[])
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path}: {}",
            answer.text()
        );
    }
    let label = host.label();
    let log = host.stop().await.log;
    assert!(
        log.contains("hello-edge: invalid configuration: HELLO_EDGE_DELAY_MS"),
        "{label}'s log: {log}"
    );
    assert_clean(&label, &log);
}

/// What only Spin is asked, on each Spin and each component it serves.
macro_rules! spin_tests {
    ($($name:ident: $spin:expr, $component:expr;)*) => {
        $(
            mod $name {
                use super::*;

                /// Spin speaks HTTP/2 with prior knowledge too. Over it, where hyper's HTTP/1.1
                /// count of 100 fields does not apply, the 101st field is the core's own 431,
                /// and the seven fields Spin adds for the component are not counted (the table's
                /// 100 fields pass): the fact `hello_edge::HOST_ADDED_FIELDS` states, seen on
                /// the wire.
                #[tokio::test]
                async fn conforms_to_the_table_over_http2() {
                    crate::conforms_over_http2(&$spin, &$component).await;
                }

                /// SIGINT (Ctrl-C) and SIGTERM alike, with 20 requests in flight: Spin exits 0
                /// at once and answers none of them, as the README's host table says.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_signal_drops_the_requests_in_flight() {
                    for signal in [Signal::SIGINT, Signal::SIGTERM] {
                        crate::signal_with_requests_in_flight(&$spin, &$component, signal).await;
                    }
                }
            }
        )*
    };
}

spin_tests! {
    spin_wasip2: SpinUp::LATEST, WASIP2;
    spin_wasip3: SpinUp::LATEST, WASIP3;
    spin_4_0_wasip2: SpinUp::V4_0, WASIP2;
}

/// The most a request head may take over HTTP/2 on Spin, as HTTP/2 counts it: what Spin
/// advertises in `SETTINGS_MAX_HEADER_LIST_SIZE`, hyper's default, since Spin sets none (see
/// docs/limits.md). A larger head is refused by Spin's hyper before the component sees it.
const SPIN_HTTP2_MAX_HEADER_LIST_SIZE: usize = 16 * 1024;

async fn conforms_over_http2(spin: &SpinUp, component: &Component) {
    let mut host = start(spin, component, &[]).await;
    let authority = host.addr().to_string();
    let (within, over): (Vec<_>, Vec<_>) = conformance::table().into_iter().partition(|case| {
        case.http2_header_list_size(&authority) <= SPIN_HTTP2_MAX_HEADER_LIST_SIZE
    });
    let mut report =
        conformance::run_cases_on(host.as_ref(), Protocol::Http2, DELAY, &within).await;
    // Past the header list size, Spin's hyper answers 431 with no body, or ends the connection,
    // and the core never sees the request.
    for case in &over {
        let fields = case.request_fields();
        match client::send(
            host.addr(),
            Protocol::Http2,
            case.method.clone(),
            &case.path,
            &fields,
        )
        .await
        {
            Ok(answer)
                if answer.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                    && answer.body.is_empty()
                    && answer.count("content-security-policy") == 0 => {}
            Err(_) => {}
            Ok(answer) => report.push(format!(
                "HTTP/2 {case}, over the header list size: {} {:?}, want Spin's own 431 or no \
                 answer",
                answer.status,
                answer.text()
            )),
        }
    }
    let label = host.label();
    let log = host.stop().await.log;
    assert!(report.is_empty(), "mismatches on {label}:\n{report}");
    assert!(
        over.len() <= 3,
        "{} cases over the header list size",
        over.len()
    );
    assert_clean(&label, &log);
}

/// Sends `signal` to Spin while 20 requests wait their delay, and checks what it does: it exits
/// 0 within a second, and none of the 20 is answered.
async fn signal_with_requests_in_flight(spin: &SpinUp, component: &Component, signal: Signal) {
    let mut host = spin
        .serve(&component.manifest(), &component.wasm(), &[], &[])
        .await;
    let label = host.label();
    let addr = host.addr();
    let requests: Vec<_> = (0..20)
        .map(|i| tokio::spawn(async move { client::get(addr, &format!("/hello/{i}")).await }))
        .collect();
    tokio::time::sleep(DELAY / 2).await;
    let signalled = std::time::Instant::now();
    let Stopped { status, log } = host.stop_with(signal).await;
    let took = signalled.elapsed();
    let mut answered = 0;
    for request in requests {
        if request.await.unwrap().is_ok() {
            answered += 1;
        }
    }
    eprintln!("{label}, {signal}: exit {status} after {took:?}, {answered} of 20 answered");
    assert!(
        status.success(),
        "{label} exited {status} on {signal}:\n{log}"
    );
    assert!(
        took < Duration::from_secs(1),
        "{label} took {took:?} to exit on {signal}"
    );
    assert_eq!(
        answered, 0,
        "{label} answered {answered} of 20 requests in flight on {signal}: it drains now, so \
         the README's host table and the Spin manifests' advice are out of date"
    );
    assert_clean(&label, &log);
}

/// Spin 4.0 refuses the WASI 0.3 component at start, saying why: it knows only a release
/// candidate of `wasi:http@0.3.0`. The README's host table says so.
#[tokio::test]
async fn spin_4_0_refuses_the_wasi_0_3_component_clearly() {
    let dir = support::spin::run_dir("spin-4.0-refusal");
    let manifest = WASIP3.manifest();
    let file = dir.join("spin.toml");
    std::fs::write(
        &file,
        support::spin::manifest_for(&manifest, &WASIP3.wasm()),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(SpinUp::V4_0.binary());
    command
        .arg("up")
        .arg("-f")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .env("SPIN_DATA_DIR", dir.join("data"));
    let label = format!(
        "spin up {}, {}",
        support::tools::pinned_version(SpinUp::V4_0.names.name),
        manifest.file
    );
    // Its own process group: if it serves after all, the trigger it starts is killed with it.
    let mut spin = Process::spawn(label.clone(), &mut command);
    let output = spin.log().clone();
    let serving = |line: &str| line.contains("Serving http://").then_some(());
    let exited = tokio::select! {
        status = spin.wait() => Some(status),
        _ = output.find(Duration::from_secs(60), serving) => None,
    };
    let log = spin.log().text();
    match exited {
        Some(status) => assert!(!status.success(), "{label} exited {status}:\n{log}"),
        None => panic!("{label} served the WASI 0.3 component, or ran on for 60 s:\n{log}"),
    }
    assert!(
        log.contains(
            "component imports instance `wasi:http/types@0.3.0`, but a matching implementation \
             was not found in the linker"
        ),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each Spin manifest is a manifest v2 for one component that serves every path, built by the
/// command in its `build` table into the file its `source` names; the tests build with that
/// very command, so `source` names what was tested.
#[test]
fn spin_manifests_build_what_they_serve() {
    for component in COMPONENTS {
        let manifest = component.manifest();
        let file = manifest.file;
        assert!(
            manifest
                .text
                .starts_with("#:schema https://schemas.spinframework.dev/spin/manifest-v2/"),
            "{file}"
        );
        let value = &manifest.value;
        assert_eq!(
            value["spin_manifest_version"].as_integer(),
            Some(2),
            "{file}"
        );
        assert_eq!(value["application"]["name"].as_str(), Some("hello-edge"));
        let trigger = &value["trigger"]["http"][0];
        assert_eq!(trigger["route"].as_str(), Some("/..."), "{file}");
        assert_eq!(trigger["component"].as_str(), Some("hello-edge"), "{file}");
        assert_eq!(
            manifest.component()["environment"][hello_edge::Config::DELAY_ENV].as_str(),
            Some("500"),
            "{file}"
        );
        assert!(
            support::component::is_under_target(&manifest.source()),
            "{file}"
        );
        let words = manifest.build_command();
        assert!(
            words
                .windows(2)
                .any(|w| w == ["--package", component.package]),
            "{file} builds {}: {words:?}",
            component.package
        );
        assert!(component.wasm().is_file(), "{file}");
    }
}

/// The default manifest is the WASI 0.2 build, which every Spin from 2.x on serves; the WASI 0.3
/// build is the other one.
#[test]
fn the_default_manifest_is_the_wasi_0_2_build() {
    assert_eq!(WASIP2.manifest, Some("spin.toml"));
    assert_eq!(WASIP2.package, "hello-edge-wasip2");
    assert_eq!(WASIP3.manifest, Some("spin-wasip3.toml"));
    assert_eq!(WASIP3.package, "hello-edge-wasip3");
}
