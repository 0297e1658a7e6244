//! Child processes as the tests run them: stdout and stderr collected as they are written, so a
//! chatty child never blocks on a full pipe and a test can await a line; signals; killed on drop.
//! A process's log files ([`LogFiles`]) are read into its log as they grow.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long the output of a process that has exited may stay open: a pipe still open after it
/// is held by something the process started.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(5);

/// What a process (or a host) has written so far: stdout and stderr, line by line, in the order
/// the lines arrived. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Log {
    shared: Arc<(Mutex<String>, Notify)>,
}

impl Log {
    /// Everything so far.
    pub fn text(&self) -> String {
        self.shared.0.lock().unwrap().clone()
    }

    /// A mark to read from later ([`Log::since`]).
    pub fn mark(&self) -> usize {
        self.shared.0.lock().unwrap().len()
    }

    /// What was written after `mark`.
    pub fn since(&self, mark: usize) -> String {
        self.shared.0.lock().unwrap()[mark..].to_owned()
    }

    /// Adds a line (without its line end).
    pub fn push(&self, line: &str) {
        let mut text = self.shared.0.lock().unwrap();
        text.push_str(line);
        text.push('\n');
        drop(text);
        self.shared.1.notify_waiters();
    }

    /// Waits until a line for which `find` says `Some` has been written, and returns that.
    /// `None` after `timeout`.
    pub async fn find<T>(&self, timeout: Duration, find: impl Fn(&str) -> Option<T>) -> Option<T> {
        let search = async {
            loop {
                let notified = self.shared.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(found) = self.text().lines().find_map(&find) {
                    return found;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, search).await.ok()
    }
}

/// A running child process; killed when dropped, with every process of its group.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    /// Its process group's id: its own pid (`process_group(0)`).
    group: u32,
    log: Log,
    readers: Vec<JoinHandle<()>>,
}

impl Process {
    /// Starts `command` with no stdin and both outputs collected into its [`Log`]. `name` says
    /// which process it is in failure messages.
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> Process {
        let name = name.into();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // A group of its own, so that what it starts goes with it: `spin up` runs its
            // trigger as a child, which a kill of `spin up` alone would leave running.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name} ({command:?}): {err}"));
        let group = child.id().expect("a child that was just spawned has a pid");
        let log = Log::default();
        let readers = vec![
            tokio::spawn(collect(child.stdout.take().unwrap(), log.clone())),
            tokio::spawn(collect(child.stderr.take().unwrap(), log.clone())),
        ];
        Process {
            name,
            child,
            group,
            log,
            readers,
        }
    }

    /// The process's name, as given to [`Process::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it has written so far.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Its process id, while it has one to give (until it has been waited for).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until it writes a line for which `find` says `Some`; panics, with its log, if it
    /// exits first or `timeout` passes.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let found = tokio::select! {
            found = self.log.find(timeout, &find) => found,
            status = self.child.wait() => {
                let status = status.unwrap();
                // The last lines may still be on their way.
                self.last_output(status).await;
                panic!(
                    "{} exited with {status} before {what}:\n{}",
                    self.name,
                    self.log.text()
                );
            }
        };
        found.unwrap_or_else(|| {
            panic!(
                "{} did not say {what} within {timeout:?}:\n{}",
                self.name,
                self.log.text()
            )
        })
    }

    /// Waits for it to exit and for the last of its output ([`Process::last_output`]); how it
    /// exited.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().await.expect("wait for the process");
        self.last_output(status).await;
        status
    }

    /// Waits up to [`OUTPUT_AFTER_EXIT`] for the last of its output once it has exited with
    /// `status`; panics, with its log, if the output stays open: something it started outlived it
    /// and holds it (the group is killed when the process is dropped). A reader is let go only
    /// once it has ended, so a wait cut short leaves the rest for the next.
    async fn last_output(&mut self, status: ExitStatus) {
        let deadline = tokio::time::Instant::now() + OUTPUT_AFTER_EXIT;
        while let Some(reader) = self.readers.first_mut() {
            if tokio::time::timeout_at(deadline, reader).await.is_err() {
                panic!(
                    "{} exited with {status}, but its output was still open {OUTPUT_AFTER_EXIT:?} \
                     later: a process it started outlived it:\n{}",
                    self.name,
                    self.log.text()
                );
            }
            self.readers.remove(0);
        }
    }

    /// Sends it a signal.
    pub fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("the process is running");
        kill(Pid::from_raw(pid as i32), signal)
            .unwrap_or_else(|err| panic!("{signal} to {}: {err}", self.name));
    }

    /// A future that sends it `signal` when awaited, holding only its pid (so the process can
    /// be borrowed meanwhile).
    pub fn signal_later(&self, signal: Signal) -> impl Future<Output = ()> + Send + 'static {
        let pid = self.child.id().expect("the process is running");
        let name = self.name.clone();
        async move {
            kill(Pid::from_raw(pid as i32), signal)
                .unwrap_or_else(|err| panic!("{signal} to {name}: {err}"));
        }
    }

    /// Sends `signal`, waits up to `timeout` for the process to exit, then for the last of its
    /// output ([`Process::last_output`]), and returns how it exited; panics, with its log, if it
    /// does not exit in time.
    pub async fn stop(&mut self, signal: Signal, timeout: Duration) -> ExitStatus {
        if self.is_running() {
            self.signal(signal);
        }
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within {timeout:?} of {signal}:\n{}",
                    self.name,
                    self.log.text()
                )
            })
            .unwrap();
        self.last_output(status).await;
        status
    }

    /// The CPU time (user and system) it has used so far, from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        let pid = self.child.id().expect("the process is running");
        cpu_time(pid)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Whatever of its group outlived it too (the child itself, if still running). The kernel
        // gives no new process the group's id while a member lives; once all are gone, only a
        // wrap of the pid counter could, so the signal reaches this group or no one.
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.group as i32), Signal::SIGKILL);
    }
}

/// The CPU time (user and system) process `pid` has used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name, in parentheses, may hold spaces: count the fields after it. utime and
    // stime are fields 14 and 15 of the whole line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// Appends each line of `output` to `log` until it ends.
async fn collect(output: impl AsyncRead + Unpin, log: Log) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                log.push(text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

/// Raises this process's open-file limit (and so its children's) to at least `want`: a test's
/// clients and the servers it starts hold a descriptor per connection. Panics if the hard limit
/// is lower.
pub fn raise_open_file_limit(want: u64) {
    let got = rlimit::increase_nofile_limit(want).expect("raise the open-file limit");
    assert!(got >= want, "open-file limit is {got}, need {want}");
}

/// Held by the tests of a test binary that load the machine most (a thousand requests at once),
/// so that no two of them run at once: a timed test measures its host, not its neighbour.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}

/// The log files a process writes beside its output (`spin up`'s for its component, under
/// `--log-dir`), read into its [`Log`] as they grow, every 50 ms, each line prefixed with its
/// file's name: `[hello-edge_stderr.txt] ...`. Stops reading when dropped.
#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    log: Log,
    offsets: Arc<Mutex<Offsets>>,
    tail: JoinHandle<()>,
}

impl LogFiles {
    /// Reads the files under `dir` into `log` from now on.
    pub fn follow(dir: PathBuf, log: Log) -> LogFiles {
        let offsets = Arc::default();
        let tail = tokio::spawn(tail_logs(dir.clone(), log.clone(), Arc::clone(&offsets)));
        LogFiles {
            dir,
            log,
            offsets,
            tail,
        }
    }

    /// Reads what the files gained, now.
    pub fn catch_up(&self) {
        read_new_lines(&self.dir, &self.log, &mut self.offsets.lock().unwrap());
    }
}

impl Drop for LogFiles {
    fn drop(&mut self) {
        self.tail.abort();
    }
}

/// How far each log file has been read.
#[derive(Debug, Default)]
struct Offsets(std::collections::BTreeMap<PathBuf, usize>);

/// Appends what the log files under `dir` gained since last time to `log`, each line prefixed
/// with its file's name, until aborted.
async fn tail_logs(dir: PathBuf, log: Log, offsets: Arc<Mutex<Offsets>>) {
    loop {
        read_new_lines(&dir, &log, &mut offsets.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One pass of [`tail_logs`]: the whole lines each file gained.
fn read_new_lines(dir: &Path, log: &Log, offsets: &mut Offsets) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let read = offsets.0.entry(file.clone()).or_default();
        // A log file only grows while its process runs; one that shrank is read again from its
        // start.
        if bytes.len() < *read {
            *read = 0;
        }
        let Some(end) = bytes[*read..].iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for line in String::from_utf8_lossy(&bytes[*read..*read + end]).lines() {
            log.push(&format!("[{name}] {line}"));
        }
        *read += end + 1;
    }
}
