//! Leaving the machine as the cluster found it, whether the run passed, failed or was killed:
//! the same sweep runs before a cluster starts (what a killed run left) and after it stops.
//!
//! Everything the cluster makes is found from what it is named, not from what this run
//! remembers: its processes name its folder on their command line, its pods' processes are in
//! its cgroup, its mounts (the pods' root filesystems, shared memory and network namespaces) are
//! under its folder, its bridge has its name, and its iptables chains are kube-proxy's,
//! the kubelet's and CNI's own (`KUBE-`, `CNI-`). The kernel settings the node changes
//! ([`SYSCTLS`]) are saved beside the folder before the first change, and put back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::oci::run;

/// The prefixes of the chains the cluster's components make.
const CHAINS: [&str; 2] = ["KUBE-", "CNI-"];

/// The kernel settings the node changes: kube-proxy's `route_localnet` (NodePorts on
/// 127.0.0.1), the bridge plugin's `ip_forward` (the pods' gateway), and what the kubelet sets
/// for its pods (it has no switch to leave them alone: `protectKernelDefaults` only refuses to
/// start unless they are already so).
pub const SYSCTLS: [&str; 8] = [
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// The folders the kubelet and libcni make outside the cluster's, where no setting moves what
/// they write, deepest first; each removed once empty.
const FIXED_DIRS: [&str; 5] = [
    "/var/lib/kubelet/device-plugins",
    "/var/lib/kubelet",
    "/var/lib/cni/results",
    "/var/lib/cni",
    "/var/log/containers",
];

/// Where libcni caches what each plugin returned.
const CNI_RESULTS: &str = "/var/lib/cni/results";

/// What the cluster made, by name.
#[derive(Debug, Clone)]
pub struct Footprint {
    /// Its folder: data, sockets, mounts.
    pub dir: PathBuf,
    /// Its cgroup's name under each hierarchy (the kubelet's `cgroupRoot`).
    pub cgroup: String,
    /// Its bridge, where the pods' veths join the node.
    pub bridge: String,
    /// kube-proxy, whose `--cleanup` removes its rules.
    pub kube_proxy: PathBuf,
}

impl Footprint {
    /// Stops and removes everything the cluster made; panics, saying what is left, if something
    /// cannot be removed.
    pub fn clean(&self) {
        // Every component at once, so none restarts what another stopped: the kubelet, which
        // would restart containers; the shims, which would report them gone.
        self.kill_until_gone("its processes", || self.processes());
        self.kill_until_gone("its pods' processes", || self.pods_processes());
        for mount in self.mounts() {
            run(Command::new("umount").arg("--lazy").arg(&mount));
        }
        self.remove_cgroups();
        for file in self.files_outside() {
            std::fs::remove_file(&file)
                .unwrap_or_else(|err| panic!("remove {}: {err}", file.display()));
        }
        for dir in FIXED_DIRS {
            // Only once empty: a folder with anything else in it stays.
            let _ = std::fs::remove_dir(dir);
        }
        let bridge = Path::new("/sys/class/net").join(&self.bridge).exists();
        // kube-proxy's and CNI's rules only where a cluster of ours ran: a machine's own
        // Kubernetes keeps its rules.
        if bridge || self.dir.exists() {
            run(Command::new(&self.kube_proxy).arg("--cleanup"));
            for tool in ["iptables", "ip6tables"] {
                remove_chains(tool);
            }
        }
        if bridge {
            run(Command::new("ip").args(["link", "delete", &self.bridge]));
        }
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .unwrap_or_else(|err| panic!("remove {}: {err}", self.dir.display()));
        }
        self.restore_sysctls();
        let left = self.left();
        assert!(left.is_empty(), "the cluster left behind: {left:?}");
    }

    /// What of the cluster is still on the machine, said for a person: empty once clean.
    pub fn left(&self) -> Vec<String> {
        let mut left = Vec::new();
        left.extend(self.processes().iter().map(|pid| format!("process {pid}")));
        left.extend(
            self.pods_processes()
                .iter()
                .map(|pid| format!("pod process {pid}")),
        );
        left.extend(
            self.mounts()
                .iter()
                .map(|m| format!("mount {}", m.display())),
        );
        left.extend(
            self.cgroups()
                .iter()
                .map(|c| format!("cgroup {}", c.display())),
        );
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            left.push(format!("bridge {}", self.bridge));
        }
        for tool in ["iptables", "ip6tables"] {
            let rules = save(tool);
            left.extend(
                rules
                    .lines()
                    .filter(|line| CHAINS.iter().any(|chain| line.contains(chain)))
                    .map(|line| format!("{tool}: {line}")),
            );
        }
        left.extend(
            self.files_outside()
                .iter()
                .map(|f| format!("file {}", f.display())),
        );
        if self.saved_sysctls().exists() {
            left.push(format!(
                "kernel settings changed, saved in {}",
                self.saved_sysctls().display()
            ));
        }
        if self.dir.exists() {
            left.push(format!("folder {}", self.dir.display()));
        }
        left
    }

    /// What the components write outside the folder, where no setting moves it: the kubelet's
    /// device plugins' socket and its links to the pods' logs; CNI's cached results of the
    /// cluster's network (`hello-edge`) and its sandboxes' loopbacks (a sandbox removed through
    /// the CRI leaves none).
    fn files_outside(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let socket = Path::new(FIXED_DIRS[0]).join("kubelet.sock");
        if socket.exists() {
            files.push(socket);
        }
        for link in std::fs::read_dir("/var/log/containers")
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::read_link(link.path()).is_ok_and(|to| to.starts_with(&self.dir)) {
                files.push(link.path());
            }
        }
        let sandboxes: Vec<String> = std::fs::read_dir(
            self.dir
                .join("containerd/state/io.containerd.grpc.v1.cri/sandboxes"),
        )
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
        for result in std::fs::read_dir(CNI_RESULTS)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = result.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("hello-edge-")
                || sandboxes
                    .iter()
                    .any(|id| name == format!("cni-loopback-{id}-lo"));
            if ours {
                files.push(result.path());
            }
        }
        files
    }

    /// Saves the [`SYSCTLS`] as they are, unless an earlier cluster's saved values are still
    /// to be put back: a killed run's changes are not what the machine had.
    pub fn save_sysctls(&self) {
        if self.saved_sysctls().exists() {
            return;
        }
        let saved: String = SYSCTLS
            .iter()
            .map(|name| {
                let value = std::fs::read_to_string(Path::new("/proc/sys").join(name))
                    .unwrap_or_else(|err| panic!("read {name}: {err}"));
                format!("{name} {}\n", value.trim())
            })
            .collect();
        std::fs::write(self.saved_sysctls(), saved).unwrap();
    }

    /// Puts the saved [`SYSCTLS`] back, and forgets them.
    fn restore_sysctls(&self) {
        let Ok(saved) = std::fs::read_to_string(self.saved_sysctls()) else {
            return;
        };
        for line in saved.lines() {
            let (name, value) = line.split_once(' ').expect("NAME VALUE");
            std::fs::write(Path::new("/proc/sys").join(name), value)
                .unwrap_or_else(|err| panic!("restore {name} to {value}: {err}"));
        }
        std::fs::remove_file(self.saved_sysctls()).unwrap();
    }

    /// Where the kernel settings are saved: beside the folder, out of the sweep's way.
    fn saved_sysctls(&self) -> PathBuf {
        self.dir.with_extension("sysctls")
    }

    /// The processes whose command line names the cluster's folder, but this one.
    fn processes(&self) -> Vec<i32> {
        let dir = format!("{}/", self.dir.display());
        let me = std::process::id() as i32;
        pids()
            .into_iter()
            .filter(|pid| *pid != me && !is_zombie(*pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|line| String::from_utf8_lossy(&line).contains(&dir))
            })
            .collect()
    }

    /// The processes in the kubelet's cgroup: the pods' containers and sandboxes.
    fn pods_processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for cgroup in self.cgroups() {
            let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
            pids.extend(
                procs
                    .lines()
                    .filter_map(|line| line.trim().parse::<i32>().ok()),
            );
        }
        pids.retain(|pid| !is_zombie(*pid));
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs what `find` finds until it finds nothing, for up to 20 s.
    fn kill_until_gone(&self, what: &str, find: impl Fn() -> Vec<i32>) {
        let started = Instant::now();
        loop {
            let pids = find();
            if pids.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what} outlived SIGKILL: {pids:?}"
            );
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The mount points under the folder, deepest first.
    fn mounts(&self) -> Vec<PathBuf> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut mounts: Vec<PathBuf> = info
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|mount| mount.starts_with(&self.dir))
            .collect();
        mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
        mounts.dedup();
        mounts
    }

    /// The cluster's cgroup and every cgroup below it, in every hierarchy, deepest first.
    fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return found;
        };
        for hierarchy in hierarchies.flatten() {
            // `cpu` and `cpuacct` are often links to `cpu,cpuacct`: each hierarchy once.
            if hierarchy.file_type().is_ok_and(|kind| kind.is_symlink()) {
                continue;
            }
            let top = hierarchy.path().join(&self.cgroup);
            if top.is_dir() {
                below(&top, &mut found);
            }
        }
        found.sort_by_key(|cgroup| std::cmp::Reverse(cgroup.components().count()));
        found
    }

    fn remove_cgroups(&self) {
        for cgroup in self.cgroups() {
            // A cgroup is removed with rmdir, empty of processes though not of files.
            let started = Instant::now();
            while let Err(err) = std::fs::remove_dir(&cgroup)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "remove cgroup {}: {err}",
                    cgroup.display()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `dir` and every folder below it.
fn below(dir: &Path, found: &mut Vec<PathBuf>) {
    found.push(dir.to_owned());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            below(&entry.path(), found);
        }
    }
}

/// Every process's id.
fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether process `pid` has exited, reaped or not.
pub(super) fn has_exited(pid: u32) -> bool {
    is_zombie(pid as i32)
}

/// Whether `pid` has exited and only waits to be reaped (its parent's business), or is gone.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // The state follows the command's name, which is in parentheses.
            stat.rsplit_once(')')
                .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// `tool-save`'s rules.
fn save(tool: &str) -> String {
    let out = Command::new(format!("{tool}-save"))
        .output()
        .unwrap_or_else(|err| panic!("{tool}-save: {err}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes every chain (and every rule naming one) the cluster's components make, leaving the
/// machine's own rules as they were.
fn remove_chains(tool: &str) {
    let rules = save(tool);
    if !rules
        .lines()
        .any(|line| CHAINS.iter().any(|c| line.contains(c)))
    {
        return;
    }
    let kept: String = rules
        .lines()
        .filter(|line| !CHAINS.iter().any(|chain| line.contains(chain)))
        .map(|line| format!("{line}\n"))
        .collect();
    let mut restore = Command::new(format!("{tool}-restore"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{tool}-restore: {err}"));
    use std::io::Write;
    restore
        .stdin
        .take()
        .unwrap()
        .write_all(kept.as_bytes())
        .unwrap();
    let status = restore.wait().unwrap();
    assert!(status.success(), "{tool}-restore failed: {status}");
}
