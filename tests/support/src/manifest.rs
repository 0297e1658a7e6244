//! The deploy manifests (`deploy/`), read as their engines read them: each YAML document an
//! object, as JSON values.

use serde_json::Value;

use crate::tools::root;

/// The objects of a multi-document YAML file, as JSON values.
pub struct Manifest {
    /// The file, relative to the repository root.
    pub file: &'static str,
    /// Its objects, in order.
    pub objects: Vec<Value>,
}

impl Manifest {
    /// Reads `file`, relative to the repository root.
    pub fn read(file: &'static str) -> Manifest {
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|err| panic!("read {file}: {err}"));
        Manifest {
            file,
            objects: objects(file, &text),
        }
    }

    /// The one object of this kind.
    pub fn kind(&self, kind: &str) -> &Value {
        let mut found = self.objects.iter().filter(|object| object["kind"] == kind);
        let object = found
            .next()
            .unwrap_or_else(|| panic!("{} has no {kind}", self.file));
        assert!(found.next().is_none(), "{} has two of {kind}", self.file);
        object
    }
}

/// The objects of the multi-document YAML `text` (read from `file`), as JSON values.
pub fn objects(file: &str, text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|err| panic!("{file} is not YAML: {err}"))
        })
        .filter(|object| !object.is_null())
        .collect()
}

/// The port a container names `name` (`ports[].containerPort`).
pub fn container_port(container: &Value, name: &str) -> u16 {
    let port = container["ports"]
        .as_array()
        .expect("the container has ports")
        .iter()
        .find(|port| port["name"] == name)
        .unwrap_or_else(|| panic!("no {name} port"))["containerPort"]
        .as_u64()
        .expect("a containerPort");
    u16::try_from(port).expect("a containerPort fits a port")
}

/// A lookup of a container's environment variables.
pub fn env_of(container: &Value) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        container["env"]
            .as_array()?
            .iter()
            .find(|var| var["name"] == name)
            .and_then(|var| var["value"].as_str().map(str::to_owned))
    }
}

/// A container's environment as the kubelet gives it to a pod named `pod`: each literal value,
/// with `$(NAME)` of a variable listed before it expanded, and the pod's name where the
/// downward API asks for `metadata.name`. Any other source is a failure naming the variable.
pub fn container_env(container: &Value, pod: &str) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("a variable's name").to_owned();
        let value = match (
            var["value"].as_str(),
            var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Some(value), _) => vars.iter().fold(value.to_owned(), |value, (earlier, set)| {
                value.replace(&format!("$({earlier})"), set)
            }),
            (None, Some("metadata.name")) => pod.to_owned(),
            _ => panic!("{name}: neither a literal value nor the pod's name: {var}"),
        };
        vars.push((name, value));
    }
    vars
}
