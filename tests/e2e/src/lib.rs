//! hello-edge's end-to-end tests, as an unpublished package of their own:
//! they run the real hosts, image tools and registry that `cargo xtask setup` installs, so the
//! core crate's tests stay the core's own. The tests are `tests/*.rs`:
//!
//! * `wasm_hosts`: every component on every wasm host (`wasmtime serve`, `wash dev`, `spin up`
//!   on Spin 4.1 and 4.0) against the conformance table, with each host's log read;
//! * `heavy`: the tests that load the machine most, one at a time;
//! * `worlds`: what each component imports and exports;
//! * `manifests`: the deploy manifests, validated offline;
//! * `deploy`: the artifacts through a registry on loopback, and the images on containerd.
