//! What each built component imports and exports, read from the `.wasm` itself, against what the
//! hosts people run provide, each fact with the place in Spin's source it was read from. The
//! hosts themselves run the components in `tests/wasm_hosts.rs` (Spin 4.1 and 4.0) and
//! `tests/deploy.rs` (the SpinKube shim); this says why, from the binary alone.

use std::collections::BTreeMap;

use semver::Version;
use support::component::{COMPONENTS, Component, WASIP2, WASIP3};
use wasmparser::component_types::ComponentEntityType;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// The WASI 0.2 interfaces that Spin 4.0.x and the SpinKube shim link for every component, all at
/// version 0.2.6.
///
/// - Spin v4.0.2, `crates/factor-wasi/src/lib.rs` (`WasiFactor::init`): the `p2::bindings`
///   `add_to_linker` calls of wasmtime-wasi 44 (`Cargo.toml`: `wasmtime-wasi = "44.0.0"`), whose
///   WIT is `wasi:*@0.2.6`; and `crates/factor-outbound-http/src/wasi.rs` (`add_to_linker`):
///   `wasi:http/types` and `wasi:http/outgoing-handler` from wasmtime-wasi-http 44.
/// - The SpinKube shim (containerd-shim-spin, `containerd-shim-wasip3/Cargo.toml` as read: Spin
///   crates at tag v3.6.3, wasmtime 42.0.2): Spin v3.6.3's `factor-wasi` links the same list,
///   and wasmtime-wasi 42's WIT is also `@0.2.6`.
///
/// Their HTTP trigger (`crates/http/src/trigger.rs`, `HandlerType::from_instance_pre`) accepts a
/// component exporting `wasi:http/incoming-handler@0.2.*`; the WASI 0.3 export it knows is only
/// the `wasi:http/handler@0.3.0-rc-2026-03-15` snapshot, not 0.3.0 final.
const SPIN_4_0_WASI_0_2: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stderr",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:http/outgoing-handler",
    "wasi:http/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];

/// The version of [`SPIN_4_0_WASI_0_2`].
const SPIN_4_0_WASI_VERSION: Version = Version::new(0, 2, 6);

/// Functions that WASI 0.2.7 to 0.2.12 made stable in those interfaces, so a component importing
/// one would not link on a 0.2.6 host. Found by comparing the WIT of wasmtime-wasi 44 (0.2.6) with
/// that of wasmtime-wasi 48 (0.2.12): `exit-with-code` went from `@unstable` to
/// `@since(version = 0.2.12)`; nothing else changed but the version numbers.
const NEWER_THAN_0_2_6: &[(&str, &str)] = &[("wasi:cli/exit", "exit-with-code")];

/// The WASI 0.2 component imports only what Spin 4.0.x and the SpinKube shim provide, and
/// exports the one handler their HTTP trigger looks for; `wasmtime serve` runs the same file in
/// the other tests.
#[test]
fn the_wasi_0_2_component_fits_spin_4_0_and_the_spinkube_shim() {
    let world = World::read(&WASIP2);
    assert_eq!(
        world.exports,
        ["wasi:http/incoming-handler"],
        "{:?}",
        world.exports_with_versions
    );
    let refused = refused_by_spin_4_0(&world);
    assert!(
        refused.is_empty(),
        "imports Spin 4.0 does not provide:\n{}",
        refused.join("\n")
    );
    // The delay's clock and the environment, as the component's design says.
    for needed in ["wasi:clocks/monotonic-clock", "wasi:cli/environment"] {
        assert!(world.imports.contains_key(needed), "{:?}", world.imports);
    }
}

/// The WASI 0.3 component exports `wasi:http/handler@0.3.0`, and the same check refuses it for
/// Spin 4.0, as Spin 4.0.2 itself does ("component imports instance `wasi:http/types@0.3.0`,
/// but a matching implementation was not found").
#[test]
fn the_wasi_0_3_component_is_refused_by_spin_4_0() {
    let world = World::read(&WASIP3);
    assert_eq!(world.exports_with_versions, ["wasi:http/handler@0.3.0"]);
    let refused = refused_by_spin_4_0(&world);
    assert!(
        refused
            .iter()
            .any(|line| line.starts_with("wasi:http/types@0.3.0")),
        "{refused:?}"
    );
}

/// Neither component imports anything Spin-only (or any other host's own interface, such as
/// `wasi:config`, which Spin and wasmtime serve at different versions), so each `.wasm` runs on
/// Spin and on `wasmtime serve` alike.
#[test]
fn no_component_imports_a_host_specific_interface() {
    for component in COMPONENTS {
        let world = World::read(component);
        for name in world.imports.keys() {
            assert!(
                name.starts_with("wasi:") && !name.starts_with("wasi:config/"),
                "{} imports {name}",
                component.name
            );
        }
    }
}

/// The check itself refuses what Spin 4.0 lacks: a Spin-only interface, a WASI 0.3 interface, an
/// interface it does not link, and a function newer than 0.2.6.
#[test]
fn the_check_refuses_what_spin_4_0_lacks() {
    let world = |name: &str, items: &[&str]| World {
        imports: BTreeMap::from([(
            name.split('@').next().unwrap().to_owned(),
            (
                name.split('@').nth(1).unwrap().to_owned(),
                items.iter().map(|s| s.to_string()).collect(),
            ),
        )]),
        exports: vec![],
        exports_with_versions: vec![],
    };
    for (name, items) in [
        ("fermyon:spin/variables@2.0.0", &["get"][..]),
        ("wasi:http/types@0.3.0", &["[constructor]fields"][..]),
        ("wasi:config/store@0.2.0-draft-2024-09-27", &["get"][..]),
        ("wasi:keyvalue/store@0.2.0-draft", &["open"][..]),
        ("wasi:cli/exit@0.2.12", &["exit", "exit-with-code"][..]),
    ] {
        assert_eq!(
            refused_by_spin_4_0(&world(name, items)).len(),
            1,
            "{name} {items:?} passed"
        );
    }
    // What it must let through: an older or newer 0.2 patch of a linked interface, semver-
    // compatible (wasmtime's `Linker` resolves 0.2.z imports to the host's 0.2 version).
    for name in ["wasi:io/poll@0.2.0", "wasi:io/poll@0.2.12"] {
        assert_eq!(
            refused_by_spin_4_0(&world(name, &["poll"])),
            Vec::<String>::new()
        );
    }
}

/// Each import of `world` that Spin 4.0.x or the SpinKube shim would not link, with why.
fn refused_by_spin_4_0(world: &World) -> Vec<String> {
    let mut refused = Vec::new();
    for (name, (version, items)) in &world.imports {
        let full = format!("{name}@{version}");
        if !SPIN_4_0_WASI_0_2.contains(&name.as_str()) {
            refused.push(format!("{full}: not an interface Spin 4.0 links"));
            continue;
        }
        match Version::parse(version) {
            Ok(v) if v.major == 0 && v.minor == 2 && v.pre.is_empty() => {}
            _ => {
                refused.push(format!(
                    "{full}: not semver-compatible with {SPIN_4_0_WASI_VERSION}"
                ));
                continue;
            }
        }
        for (interface, item) in NEWER_THAN_0_2_6 {
            if name == interface && items.iter().any(|i| i == item) {
                refused.push(format!("{full}: `{item}` is newer than 0.2.6"));
            }
        }
    }
    refused
}

/// A component's world as its binary states it.
#[derive(Debug)]
struct World {
    /// Imported instances: interface (without version) -> (version, the items it takes).
    imports: BTreeMap<String, (String, Vec<String>)>,
    /// Exported interfaces, without versions.
    exports: Vec<String>,
    exports_with_versions: Vec<String>,
}

impl World {
    /// Reads the top-level imports and exports of a built component, with the items of each
    /// imported instance (from the validator's view of its types).
    fn read(component: &Component) -> World {
        let bytes = std::fs::read(component.wasm()).expect("read the component");
        let types = Validator::new_with_features(WasmFeatures::all())
            .validate_all(&bytes)
            .expect("the component is valid");

        let (mut import_names, mut export_names) = (Vec::new(), Vec::new());
        let mut depth = 0;
        for payload in Parser::new(0).parse_all(&bytes) {
            match payload.expect("parse the component") {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth -= 1,
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        import_names.push(import.unwrap().name.0.to_owned());
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        export_names.push(export.unwrap().name.0.to_owned());
                    }
                }
                _ => {}
            }
        }

        let mut imports = BTreeMap::new();
        for full in import_names {
            let items = match types.component_entity_type_of_import(&full) {
                Some(ComponentEntityType::Instance(id)) => {
                    types[id].exports.keys().cloned().collect()
                }
                other => panic!("{full} is not an instance import: {other:?}"),
            };
            let (name, version) = full.split_once('@').unwrap_or((&full, ""));
            imports.insert(name.to_owned(), (version.to_owned(), items));
        }
        World {
            imports,
            exports: export_names
                .iter()
                .map(|e| e.split('@').next().unwrap().to_owned())
                .collect(),
            exports_with_versions: export_names,
        }
    }
}
