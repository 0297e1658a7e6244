//! A Service of the cluster as a host of the catalogue: a NodePort Service the test adds with the
//! selector of the manifest's own Service, so every request goes through kube-proxy and the
//! Service's endpoints, to 127.0.0.1 alone. Its log is its pods' logs, followed as they are
//! written (`kubectl logs -f`); it has no process of its own here, and stops by being deleted.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Kubectl, node_port_addr};
use crate::client;
use crate::host::{BoxFuture, Host, Stopped};
use crate::process::{Log, Process};

/// A NodePort Service on 127.0.0.1, and its pods' logs.
pub struct NodePort {
    name: String,
    addr: SocketAddr,
    kubectl: Kubectl,
    logs: Process,
}

impl NodePort {
    /// Adds `NAME-nodeport`, a NodePort Service with the selector and ports of the Service
    /// `name`, and returns once it answers on 127.0.0.1.
    pub async fn expose(kubectl: &Kubectl, name: &str) -> NodePort {
        let service = kubectl.get(&["service", name]).await;
        let selector = service["spec"]["selector"].clone();
        let port = &service["spec"]["ports"][0];
        let own = format!("{name}-nodeport");
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": own},
            "spec": {
                "type": "NodePort",
                "selector": selector,
                "ports": [{"name": port["name"], "port": port["port"], "targetPort": port["targetPort"]}],
            },
        });
        kubectl.apply(&manifest.to_string()).await;
        let created = kubectl.get(&["service", &own]).await;
        let node_port = created["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .expect("the apiserver gives a NodePort") as u16;
        let labels = selector_arg(&selector);
        let mut logs = kubectl.command();
        logs.args(["logs", "--follow", "--prefix", "--timestamps=false"])
            .args([
                "--max-log-requests",
                "20",
                "--tail=-1",
                "--selector",
                &labels,
            ]);
        let addr = node_port_addr(node_port);
        // kube-proxy writes the NodePort's rules a moment after the Service is made.
        let started = std::time::Instant::now();
        while !client::get(addr, "/healthz")
            .await
            .is_ok_and(|answer| answer.status == 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "NodePort {addr} of Service {own} did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        NodePort {
            name: own,
            addr,
            kubectl: kubectl.clone(),
            logs: Process::spawn(format!("kubectl logs -l {labels}"), &mut logs),
        }
    }

    /// The Service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its NodePort on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// `k=v,k=v` from a Service's selector.
fn selector_arg(selector: &Value) -> String {
    selector
        .as_object()
        .expect("a Service's selector is a map")
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

impl Host for NodePort {
    fn label(&self) -> String {
        format!("Service {} (NodePort {})", self.name, self.addr)
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn log(&self) -> Log {
        self.logs.log().clone()
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        Box::pin(async move {
            let mut delete = self.kubectl.command();
            delete.args(["delete", "service", &self.name, "--wait"]);
            let status: ExitStatus = delete.status().await.expect("run kubectl delete");
            self.logs
                .stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
                .await;
            Stopped {
                status,
                log: self.logs.log().text(),
            }
        })
    }
}
