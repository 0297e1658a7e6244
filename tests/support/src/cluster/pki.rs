//! The cluster's certificates and kubeconfigs, as kubeadm lays them out: one CA signs the
//! apiserver's serving certificate and a client certificate per component, each named as
//! Kubernetes's RBAC and Node authorizers expect (`system:node:NODE` in `system:nodes`,
//! `system:kube-controller-manager`, ...), and the front proxy's client certificate for the
//! aggregated metrics API. The service accounts' tokens are signed with a key of their own.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A client of the apiserver: a component, or the tests' admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The tests, and `kubectl` for whoever debugs a run: `system:masters`.
    Admin,
    /// `kube-controller-manager`.
    ControllerManager,
    /// `kube-scheduler`.
    Scheduler,
    /// The kubelet of the one node.
    Kubelet,
    /// `kube-proxy`.
    Proxy,
    /// metrics-server, also the aggregated API's server.
    MetricsServer,
}

impl Client {
    /// Every client, each with a kubeconfig.
    pub const ALL: [Client; 6] = [
        Client::Admin,
        Client::ControllerManager,
        Client::Scheduler,
        Client::Kubelet,
        Client::Proxy,
        Client::MetricsServer,
    ];

    /// Its file names' stem.
    pub fn name(self) -> &'static str {
        match self {
            Client::Admin => "admin",
            Client::ControllerManager => "controller-manager",
            Client::Scheduler => "scheduler",
            Client::Kubelet => "kubelet",
            Client::Proxy => "proxy",
            Client::MetricsServer => "metrics-server",
        }
    }

    /// The user and group its certificate names.
    fn subject(self, node: &str) -> (String, Option<&'static str>) {
        match self {
            Client::Admin => ("hello-edge-tests".into(), Some("system:masters")),
            Client::ControllerManager => ("system:kube-controller-manager".into(), None),
            Client::Scheduler => ("system:kube-scheduler".into(), None),
            Client::Kubelet => (format!("system:node:{node}"), Some("system:nodes")),
            Client::Proxy => ("system:kube-proxy".into(), None),
            Client::MetricsServer => ("system:metrics-server".into(), None),
        }
    }
}

/// Where the files are: `DIR/pki` and `DIR/NAME.kubeconfig`.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
    kubeconfigs: PathBuf,
}

impl Pki {
    /// Makes the CA, every certificate and every kubeconfig, for an apiserver on
    /// `127.0.0.1:apiserver_port` that advertises `node_ip`, its Services' first address
    /// being `service_ip`.
    pub fn write(
        dir: &Path,
        node: &str,
        node_ip: Ipv4Addr,
        service_ip: Ipv4Addr,
        apiserver_port: u16,
    ) -> Pki {
        let pki = Pki {
            dir: dir.join("pki"),
            kubeconfigs: dir.to_owned(),
        };
        std::fs::create_dir_all(&pki.dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "hello-edge cluster CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        pki.put("ca.crt", &ca_cert.pem());
        pki.put("ca.key", &ca_key.serialize_pem());
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |name: &str, common: &str, group: Option<&str>, names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, common);
            if let Some(group) = group {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, group);
            }
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &issuer).unwrap();
            pki.put(&format!("{name}.crt"), &cert.pem());
            pki.put(&format!("{name}.key"), &key.serialize_pem());
        };

        let serving = [
            "127.0.0.1".to_owned(),
            node_ip.to_string(),
            service_ip.to_string(),
            "localhost".into(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
        ];
        leaf("apiserver", "kube-apiserver", None, serving.into());
        // The apiserver's client certificate to the kubelets (logs, exec, port-forward).
        leaf(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            Some("system:masters"),
            vec![],
        );
        leaf("front-proxy-client", "front-proxy-client", None, vec![]);
        // The admission webhooks the tests run beside the cluster (spin-operator's), which the
        // apiserver calls on 127.0.0.1.
        leaf(
            "webhook",
            "hello-edge webhooks",
            None,
            vec!["127.0.0.1".into()],
        );
        for client in Client::ALL {
            let (user, group) = client.subject(node);
            leaf(client.name(), &user, group, vec![]);
            let kubeconfig = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: hello-edge\n  cluster:\n    \
                 server: https://127.0.0.1:{apiserver_port}\n    certificate-authority: {ca}\n\
                 users:\n- name: {name}\n  user:\n    client-certificate: {crt}\n    \
                 client-key: {key}\ncontexts:\n- name: hello-edge\n  context:\n    \
                 cluster: hello-edge\n    user: {name}\ncurrent-context: hello-edge\n",
                name = client.name(),
                ca = pki.file("ca.crt").display(),
                crt = pki.file(&format!("{}.crt", client.name())).display(),
                key = pki.file(&format!("{}.key", client.name())).display(),
            );
            std::fs::write(pki.kubeconfig(client), kubeconfig).unwrap();
        }
        let accounts = KeyPair::generate().unwrap();
        pki.put("service-accounts.key", &accounts.serialize_pem());
        pki.put("service-accounts.pub", &accounts.public_key_pem());
        pki
    }

    /// A file under `pki/`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `client`'s kubeconfig.
    pub fn kubeconfig(&self, client: Client) -> PathBuf {
        self.kubeconfigs
            .join(format!("{}.kubeconfig", client.name()))
    }

    fn put(&self, name: &str, pem: &str) {
        std::fs::write(self.file(name), pem).unwrap();
    }
}
