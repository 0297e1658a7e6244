//! Every component under every real wasm host, against the same conformance table as the native
//! server, over real TCP; and, for each, the host's own log, which must show no guest failure.
//!
//! The hosts and the components are two lists below: each host runs every component, so a new
//! host is its [`ComponentHost`] implementation (in `tests/support`) and one line here.

use std::time::Duration;

use http::StatusCode;
use support::client::{self, Protocol};
use support::component::{COMPONENTS, WASIP2, WASIP3};
use support::conformance;
use support::host::{ComponentHost, Host, Wash, Wasmtime, guest_failures};

/// The delay every host is configured with unless a test says otherwise: the default.
const DELAY: Duration = Duration::from_millis(500);

/// The same tests for each host × component; only the host and the `.wasm` differ.
macro_rules! host_tests {
    (hosts: [$($host:ident: $kind:ty),* $(,)?], components: $components:tt) => {
        $( host_tests!(@host $host, $kind, $components); )*
    };
    (@host $host:ident, $kind:ty, [$($component:ident: $which:expr),* $(,)?]) => {
        mod $host {
            use super::*;
            $(
                mod $component {
                    use super::*;

                    /// Every case of the conformance table answers as it does natively, with the
                    /// default delay (no variable set), and the host logs no guest failure.
                    #[tokio::test]
                    async fn conforms_to_the_table() {
                        crate::conforms_to_the_table::<$kind>(&$which).await;
                    }

                    /// 200 requests that each wait 500 ms overlap on the host's event loop:
                    /// together they take about one delay.
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn two_hundred_requests_overlap() {
                        crate::two_hundred_requests_overlap::<$kind>(&$which).await;
                    }

                    /// Clients that leave before their answer end their request quietly: no
                    /// guest failure in the host's log, and the next client is served.
                    #[tokio::test]
                    async fn clients_that_leave_early_leave_the_log_clean() {
                        crate::clients_that_leave_early_leave_the_log_clean::<$kind>(&$which).await;
                    }

                    /// The delay is read from the component's environment.
                    #[tokio::test]
                    async fn the_delay_comes_from_the_environment() {
                        crate::the_delay_comes_from_the_environment::<$kind>(&$which).await;
                    }

                    /// An invalid delay is a clear 500 naming the variable, and is logged.
                    #[tokio::test]
                    async fn an_invalid_delay_is_a_clear_500() {
                        crate::an_invalid_delay_is_a_clear_500::<$kind>(&$which).await;
                    }
                }
            )*
        }
    };
}

host_tests! {
    hosts: [
        wasmtime: Wasmtime,
        wash: Wash,
    ],
    components: [
        wasip2: WASIP2,
        wasip3: WASIP3,
    ]
}

async fn conforms_to_the_table<H: ComponentHost>(component: &support::component::Component) {
    let host = H::start(component, &[]).await;
    let report = conformance::run_on(&host, Protocol::Http1, DELAY).await;
    let label = host.label();
    let log = host.stop().await;
    assert!(report.is_empty(), "mismatches on {label}:\n{report}");
    assert_clean(&label, &log);
}

async fn two_hundred_requests_overlap<H: ComponentHost>(component: &support::component::Component) {
    let host = H::start(component, &[("HELLO_EDGE_DELAY_MS", "500")]).await;
    conformance::assert_overlap(host.addr(), 200, DELAY, Duration::from_secs(3)).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await);
}

async fn clients_that_leave_early_leave_the_log_clean<H: ComponentHost>(
    component: &support::component::Component,
) {
    let host = H::start(component, &[]).await;
    let report = conformance::leave_early(&host, 20, DELAY).await;
    let label = host.label();
    let log = host.stop().await;
    assert!(report.is_empty(), "on {label}:\n{report}");
    assert_clean(&label, &log);
}

async fn the_delay_comes_from_the_environment<H: ComponentHost>(
    component: &support::component::Component,
) {
    let host = H::start(component, &[("HELLO_EDGE_DELAY_MS", "50")]).await;
    let answer = client::get(host.addr(), "/hello/quick").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "<h1>hello, quick!</h1>");
    assert!(
        answer.elapsed >= Duration::from_millis(50) && answer.elapsed < Duration::from_millis(400),
        "took {:?} with a 50 ms delay",
        answer.elapsed
    );
    let label = host.label();
    assert_clean(&label, &host.stop().await);
}

async fn an_invalid_delay_is_a_clear_500<H: ComponentHost>(
    component: &support::component::Component,
) {
    let host = H::start(component, &[("HELLO_EDGE_DELAY_MS", "soon")]).await;
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
    let label = host.label();
    let log = host.stop().await;
    assert!(
        log.contains("hello-edge: invalid configuration: HELLO_EDGE_DELAY_MS"),
        "{label}'s log: {log}"
    );
    assert_clean(&label, &log);
}

/// On wasmCloud, with the dev config's instance pool, 1,000 requests at once are all answered
/// in about one delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_overlap_on_wasmcloud() {
    let host = Wash::serve(&WASIP2.wasm(), &[]).await;
    conformance::assert_overlap(host.addr(), 1000, DELAY, Duration::from_secs(3)).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await);
}

/// Without the dev config's pool settings, wasmCloud's runtime holds 1,000 core instances, three
/// to a waiting WASI 0.2 request: of 1,000 requests at once, most are refused with a 500 and the
/// host logs why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pool_settings_wasmcloud_refuses_most_of_a_thousand() {
    let pool = [
        "WASMTIME_POOLING_TOTAL_COMPONENT_INSTANCES",
        "WASMTIME_POOLING_TOTAL_CORE_INSTANCES",
        "WASMTIME_POOLING_TOTAL_MEMORIES",
        "WASMTIME_POOLING_TOTAL_TABLES",
        "WASMTIME_POOLING_TOTAL_STACKS",
        "WASMTIME_POOLING_MAX_MEMORY_SIZE",
    ];
    let host = Wash::serve_without(&WASIP2.wasm(), &[], &pool).await;
    let statuses = conformance::statuses_at_once(host.addr(), 1000).await;
    let ok = statuses
        .iter()
        .filter(|s| **s == Some(StatusCode::OK))
        .count();
    let log = host.stop().await;
    eprintln!("without the pool settings: {ok} of 1,000 answered 200");
    assert!(ok < 500, "{ok} of 1,000 answered 200 with the default pool");
    assert!(
        log.contains("maximum concurrent limit of 1000 for core instances reached")
            || log.contains("failed to invoke component"),
        "{log}"
    );
}

/// A host's whole log holds no guest failure.
fn assert_clean(label: &str, log: &str) {
    let failures = guest_failures(log);
    assert!(
        failures.is_empty(),
        "{label} logged {} guest failures, the first: {}\nits log:\n{log}",
        failures.len(),
        failures[0]
    );
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
            manifest.component()["environment"]["HELLO_EDGE_DELAY_MS"].as_str(),
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
    assert_eq!(WASIP2.manifest, "spin.toml");
    assert_eq!(WASIP2.package, "hello-edge-wasip2");
    assert_eq!(WASIP3.manifest, "spin-wasip3.toml");
    assert_eq!(WASIP3.package, "hello-edge-wasip3");
}
