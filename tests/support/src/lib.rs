//! The harness every hello-edge test uses, in one place:
//!
//! * [`host`]: the [`host::Host`] trait, what every host under test offers (an address, its
//!   log, its process, a stop), and how a host is seen to be ready.
//! * [`catalogue`]: every host as a value, and the one way each starts: the programs that serve
//!   the components ([`catalogue::WASM_HOSTS`]) and the benchmark's servers by name
//!   ([`catalogue::servers`], started for `bench/run` by the `hosts` binary).
//! * The hosts: [`native`] (the server in this process and the binary, and what its log says),
//!   [`wasmtime`] (`wasmtime serve`), [`wash`] (`wash dev`), [`spin`] (`spin up`, on each
//!   Spin), [`containerd`] (the images, as a node runs them), [`cluster`] (a live single-node
//!   Kubernetes cluster, whose Services are hosts too).
//! * [`client`]: one HTTP/1.1 and one HTTP/2 client, and the [`client::Answer`] they read;
//!   [`load`]: clients sending in a loop, and a tally of what they saw.
//! * [`conformance`]: the conformance table, the spec every host answers alike, its checker and
//!   its runner; [`scenarios`]: what a host is asked beyond single requests (overlap, clients
//!   that leave, a stop while clients arrive).
//! * [`component`]: the components, each built by its Spin manifest's own build command.
//! * [`process`]: child processes, their output collected as it is written.
//! * [`tools`]: where the pinned tools are (`cargo xtask setup` installs them).
//! * [`oci`]: the images, a registry on loopback and the image tools, for the deploy tests.
//! * [`manifest`]: the deploy manifests, read.
//! * [`jaeger`]: the trace collector, run on loopback, and the traces read back from it.

pub mod catalogue;
pub mod client;
pub mod cluster;
pub mod component;
pub mod conformance;
pub mod containerd;
pub mod host;
pub mod jaeger;
pub mod load;
pub mod manifest;
pub mod native;
pub mod oci;
pub mod process;
pub mod scenarios;
pub mod spin;
pub mod tools;
pub mod wash;
pub mod wasmtime;
