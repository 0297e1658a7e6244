//! The harness every hello-edge test uses, in one place:
//!
//! * [`host`]: the [`host::Host`] trait, what every host under test offers (an address, its
//!   log, a stop), and each host: the native server in this process and as a binary, and the
//!   wasm hosts, each on a port it picked itself.
//! * [`client`]: one HTTP/1.1 and one HTTP/2 client, and the [`client::Answer`] they read.
//! * [`conformance`]: the conformance table, the spec every host answers alike, and its runner.
//! * [`component`]: the components, each built by its Spin manifest's own build command.
//! * [`process`]: child processes, their output collected as it is written.
//! * [`spin`]: `spin up`, on the Spin the tests are for and on Spin 4.0.
//! * [`tools`]: where the pinned tools are (`cargo xtask setup` installs them).
//! * [`oci`]: the images, a registry on loopback and the image tools, for the deploy tests.
//! * [`containerd`]: a containerd of the tests' own, running the images as a node runs them.
//! * [`manifest`]: the deploy manifests, read.

pub mod client;
pub mod component;
pub mod conformance;
pub mod containerd;
pub mod host;
pub mod manifest;
pub mod oci;
pub mod process;
pub mod spin;
pub mod tools;
mod wash;
