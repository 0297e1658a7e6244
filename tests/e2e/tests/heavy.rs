//! The tests that load the machine most, in a binary of their own and one at a time, so that a
//! timed one measures its host and not a neighbour (cargo runs test binaries one after another;
//! within this one each test holds [`support::process::alone`]): a thousand requests at once on
//! each host, a host's instance pool past its limit, and the Spin manifests built from a fresh
//! copy of the repository.

use std::time::Duration;

use http::StatusCode;
use support::client::Protocol;
use support::component::{COMPONENTS, Component, WASIP2, WASIP3};
use support::conformance;
use support::host::{Host, Launch, WasmHost, assert_clean};
use support::process::{alone, raise_open_file_limit};
use support::scenarios;
use support::spin::{self, SpinUp};
use support::wash::WashDev;

/// The delay every host is configured with: the default.
const DELAY: Duration = hello_edge::Delay::DEFAULT.as_duration();

/// 1,000 requests at once are all answered 200, in about one delay, on each Spin and each
/// component it serves.
mod a_thousand_requests_overlap_on_spin {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wasip2() {
        crate::a_thousand_requests_overlap(&SpinUp::LATEST, &WASIP2).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wasip3() {
        crate::a_thousand_requests_overlap(&SpinUp::LATEST, &WASIP3).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wasip2_on_spin_4_0() {
        crate::a_thousand_requests_overlap(&SpinUp::V4_0, &WASIP2).await;
    }
}

async fn a_thousand_requests_overlap(host: &dyn WasmHost, component: &Component) {
    // The clients' 1,000 connections here, and Spin's (which inherits the limit).
    raise_open_file_limit(4096);
    let _alone = alone().await;
    let mut host = host.start(component, &Launch::default()).await;
    scenarios::assert_overlap(host.addr(), 1000, DELAY, Duration::from_secs(3)).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await.log);
}

/// On wasmCloud, with the dev config's instance pool, 1,000 requests at once are all answered
/// in about one delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_overlap_on_wasmcloud() {
    let _alone = alone().await;
    let mut host = WashDev::serve_with(&WASIP2.wasm(), &[]).await;
    scenarios::assert_overlap(host.addr(), 1000, DELAY, Duration::from_secs(3)).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await.log);
}

/// Without the dev config's pool settings, wasmCloud's runtime holds 1,000 core instances, three
/// to a waiting WASI 0.2 request: of 1,000 requests at once, most are refused with a 500 and the
/// host logs why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pool_settings_wasmcloud_refuses_most_of_a_thousand() {
    let _alone = alone().await;
    let pool = [
        "WASMTIME_POOLING_TOTAL_COMPONENT_INSTANCES",
        "WASMTIME_POOLING_TOTAL_CORE_INSTANCES",
        "WASMTIME_POOLING_TOTAL_MEMORIES",
        "WASMTIME_POOLING_TOTAL_TABLES",
        "WASMTIME_POOLING_TOTAL_STACKS",
        "WASMTIME_POOLING_MAX_MEMORY_SIZE",
    ];
    let mut host = WashDev::serve_without(&WASIP2.wasm(), &[], &pool).await;
    let statuses = scenarios::statuses_at_once(host.addr(), 1000).await;
    let ok = statuses
        .iter()
        .filter(|s| **s == Some(StatusCode::OK))
        .count();
    let log = host.stop().await.log;
    eprintln!("without the pool settings: {ok} of 1,000 answered 200");
    assert!(ok < 500, "{ok} of 1,000 answered 200 with the default pool");
    assert!(
        log.contains("maximum concurrent limit of 1000 for core instances reached")
            || log.contains("failed to invoke component"),
        "{log}"
    );
}

/// Spin's instance pool holds 1,000 component instances (`SPIN_MAX_INSTANCE_COUNT`), and a waiting
/// WASI 0.2 request holds one: of 1,500 requests at once, those past the pool are refused with a
/// 500 (how many depends on how fast the first answers free instances), the log naming the pool.
/// With `SPIN_MAX_INSTANCE_COUNT` raised (as the README advises for thousands of waiting
/// requests), all 2,000 are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_s_pool_binds_wasi_0_2_at_a_thousand_requests() {
    raise_open_file_limit(8192);
    let _alone = alone().await;
    let ok = |statuses: &[Option<StatusCode>]| {
        statuses
            .iter()
            .filter(|s| **s == Some(StatusCode::OK))
            .count()
    };
    let mut host = SpinUp::LATEST
        .serve(&WASIP2.manifest(), &WASIP2.wasm(), &[], &[])
        .await;
    let statuses = scenarios::statuses_at_once(host.addr(), 1500).await;
    let log = host.stop().await.log;
    let refused = statuses
        .iter()
        .filter(|s| **s == Some(StatusCode::INTERNAL_SERVER_ERROR))
        .count();
    eprintln!(
        "Spin's default pool: {} of 1,500 answered 200, {refused} 500",
        ok(&statuses)
    );
    assert!(
        (900..=1100).contains(&ok(&statuses)) && ok(&statuses) + refused == 1500,
        "{} of 1,500 answered 200, {refused} refused",
        ok(&statuses)
    );
    assert!(
        log.contains("maximum concurrent limit of 1000 for component instances reached"),
        "{log}"
    );

    let raised = [("SPIN_MAX_INSTANCE_COUNT", "3000")];
    let mut host = SpinUp::LATEST
        .serve(&WASIP2.manifest(), &WASIP2.wasm(), &[], &raised)
        .await;
    let statuses = scenarios::statuses_at_once(host.addr(), 2000).await;
    let label = host.label();
    assert_clean(&label, &host.stop().await.log);
    assert_eq!(ok(&statuses), 2000, "with SPIN_MAX_INSTANCE_COUNT=3000");
}

/// The README's `spin build --up`, as a newcomer runs it: in a fresh copy of the repository (no
/// `target/`), `spin build -f MANIFEST` runs the manifest's own build command, `spin up -f
/// MANIFEST` serves what it built, and the table passes on it, for each manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_build_up_serves_what_it_built_from_a_fresh_copy() {
    let _alone = alone().await;
    let copy = support::spin::fresh_copy();
    for component in COMPONENTS {
        let manifest = copy.join(component.manifest_file());
        let built = copy.join(component.manifest().source());
        assert!(
            !built.exists(),
            "{} was there before the build",
            built.display()
        );
        let dir = support::spin::run_dir("spin-build");
        // `spin build`, then the `spin up` that `--up` runs after it.
        let built_ok = tokio::process::Command::new(support::tools::spin())
            .arg("build")
            .arg("-f")
            .arg(&manifest)
            .env("SPIN_DATA_DIR", dir.join("data"))
            .stdin(std::process::Stdio::null())
            .status()
            .await
            .expect("run spin build");
        assert!(
            built_ok.success(),
            "spin build -f {} failed",
            component.manifest_file()
        );
        let mut command = tokio::process::Command::new(support::tools::spin());
        command
            .arg("up")
            .arg("-f")
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0", "--log-dir"])
            .arg(dir.join("logs"));
        let label = format!(
            "spin build -f {0}, then spin up -f {0}",
            component.manifest_file()
        );
        let mut host = spin::spawn(command, &dir, label.clone()).await;
        assert!(built.is_file(), "{label} built no {}", built.display());
        let report = conformance::run_on(&host, Protocol::Http1, DELAY).await;
        let log = host.stop().await.log;
        assert!(report.is_empty(), "mismatches on {label}:\n{report}");
        assert_clean(&label, &log);
    }
    let _ = std::fs::remove_dir_all(&copy);
}
