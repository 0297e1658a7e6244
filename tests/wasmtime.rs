//! Both components under a real wasm host, `wasmtime serve`, against the same conformance table
//! as the native server, over real TCP: the WASI 0.2 component (the default, `spin.toml`) and the
//! WASI 0.3 component (`spin-wasip3.toml`), each built by its manifest's own build command.

mod conformance;
mod wasm;

use std::time::Duration;

use http::{Method, StatusCode};
use wasm::{Component, WasmHost};

/// The same tests for each component; only the `.wasm` differs.
macro_rules! host_tests {
    ($module:ident, $component:expr) => {
        mod $module {
            use super::*;

            /// Every case of the conformance table answers on wasmtime as it does natively,
            /// with the default delay (no variable set).
            #[tokio::test]
            async fn conforms_to_the_table() {
                let host = WasmHost::start($component.wasm(), &[]).await;
                let report = conformance::run(host.addr, Duration::from_millis(500)).await;
                assert!(report.is_empty(), "mismatches on wasmtime serve:\n{report}");
            }

            /// 200 requests that each wait 500 ms overlap on the host's event loop: together
            /// they take about one delay.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_hundred_requests_overlap() {
                let host =
                    WasmHost::start($component.wasm(), &[("HELLO_EDGE_DELAY_MS", "500")]).await;
                conformance::assert_overlap(
                    host.addr,
                    200,
                    Duration::from_millis(500),
                    Duration::from_secs(3),
                )
                .await;
            }

            /// The delay is read from the component's environment.
            #[tokio::test]
            async fn the_delay_comes_from_the_environment() {
                the_delay_comes_from_the_environment_of($component).await;
            }

            /// An invalid delay is a clear 500 naming the variable, and is logged to stderr.
            #[tokio::test]
            async fn an_invalid_delay_is_a_clear_500() {
                an_invalid_delay_is_a_clear_500_on($component).await;
            }
        }
    };
}

host_tests!(wasip2, Component::P2);
host_tests!(wasip3, Component::P3);

async fn the_delay_comes_from_the_environment_of(component: Component) {
    let host = WasmHost::start(component.wasm(), &[("HELLO_EDGE_DELAY_MS", "50")]).await;
    let answer = conformance::send(host.addr, Method::GET, "/hello/quick")
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "<h1>hello, quick!</h1>");
    assert!(
        answer.elapsed >= Duration::from_millis(50) && answer.elapsed < Duration::from_millis(400),
        "took {:?} with a 50 ms delay",
        answer.elapsed
    );
}

async fn an_invalid_delay_is_a_clear_500_on(component: Component) {
    let mut host = WasmHost::start(component.wasm(), &[("HELLO_EDGE_DELAY_MS", "soon")]).await;
    let answer = conformance::send(host.addr, Method::GET, "/hello/x")
        .await
        .unwrap();
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

    let stderr = host.stop_and_read_stderr().await;
    assert!(
        stderr.contains("hello-edge: invalid configuration: HELLO_EDGE_DELAY_MS"),
        "stderr: {stderr}"
    );
}

/// Each Spin manifest is a manifest v2 for one component that serves every path, built by the
/// command in its `build` table into the file its `source` names; the tests build with that
/// very command, so `source` names what was tested.
#[test]
fn spin_manifests_build_what_they_serve() {
    for component in Component::ALL {
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
            wasm::root()
                .join(manifest.source())
                .starts_with(wasm::root().join("target")),
            "{file}"
        );
        assert!(component.wasm().is_file(), "{file}");
    }
}

/// The default manifest is the WASI 0.2 build, which every Spin from 2.x on serves; the WASI 0.3
/// build is the other one.
#[test]
fn the_default_manifest_is_the_wasi_0_2_build() {
    let words = Component::P2.manifest().build_command();
    assert!(
        words
            .windows(2)
            .any(|w| w == ["--package", "hello-edge-wasip2"]),
        "{words:?}"
    );
    let words = Component::P3.manifest().build_command();
    assert!(
        words
            .windows(2)
            .any(|w| w == ["--package", "hello-edge-wasip3"]),
        "{words:?}"
    );
}
