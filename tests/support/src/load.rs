//! A steady load for the cluster's checks: clients that each send `GET path` in a loop, every
//! request waiting the delay, until told to stop; and a tally of what they saw. A request
//! counts as lost if it got no answer (refused, reset, timed out) or an answer other than 200.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use tokio::task::JoinSet;

use crate::client::{self, Connection, Protocol};

/// How long one request may take before it counts as lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the clients use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// A new connection for every request, as kube-proxy balances connections, not requests:
    /// each request may go to another pod.
    PerRequest,
    /// One kept-alive connection per client, opened again if the server closes it.
    KeptAlive,
}

/// What the clients saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests answered 200.
    pub ok: u64,
    /// Answers other than 200, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no answer, by what went wrong.
    pub failures: BTreeMap<String, u64>,
    /// The longest a request took, connecting included.
    pub slowest: Duration,
}

impl Tally {
    /// Requests that got no 200.
    pub fn lost(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failures.values().sum::<u64>()
    }

    /// Every request sent.
    pub fn sent(&self) -> u64 {
        self.ok + self.lost()
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for (failure, count) in other.failures {
            *self.failures.entry(failure).or_default() += count;
        }
        self.slowest = self.slowest.max(other.slowest);
    }

    fn fail(&mut self, what: &str) {
        // Its first words, which say the kind of failure.
        let kind: String = what.chars().take(60).collect();
        *self.failures.entry(kind).or_default() += 1;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests: {} answered 200, {} lost (statuses {:?}, failures {:?}); the slowest took {:?}",
            self.sent(),
            self.ok,
            self.lost(),
            self.statuses,
            self.failures,
            self.slowest
        )
    }
}

/// Clients running until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: JoinSet<Tally>,
}

impl Load {
    /// Starts `clients` clients sending `GET path` to `addr` over HTTP/1.1, each starting a
    /// moment after the one before (spread over a second), so they do not arrive at once.
    pub fn start(addr: SocketAddr, path: &str, clients: usize, connections: Connections) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for i in 0..clients {
            let stop = Arc::clone(&stop);
            let path = path.to_owned();
            let after = Duration::from_secs(1) * i as u32 / clients as u32;
            set.spawn(async move {
                tokio::time::sleep(after).await;
                client_loop(addr, &path, connections, &stop).await
            });
        }
        Load { stop, clients: set }
    }

    /// Tells the clients to stop once their request in flight is answered, and adds up what
    /// they saw.
    pub async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        while let Some(client) = self.clients.join_next().await {
            tally.add(client.expect("a load client panicked"));
        }
        tally
    }
}

async fn client_loop(
    addr: SocketAddr,
    path: &str,
    connections: Connections,
    stop: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let mut open: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            match connections {
                Connections::PerRequest => client::get(addr, path).await,
                Connections::KeptAlive => {
                    if open.is_none() {
                        open = Some(Connection::open(addr, Protocol::Http1).await?);
                    }
                    let answer = open
                        .as_mut()
                        .expect("opened above")
                        .send(Method::GET, path, &[])
                        .await;
                    // A closed connection (the server's `connection: close`, or an error) is
                    // opened again for the next request.
                    let close = answer.as_ref().map_or(true, |answer| {
                        answer
                            .one("connection")
                            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
                    });
                    if close {
                        open = None;
                    }
                    answer
                }
            }
        })
        .await;
        tally.slowest = tally.slowest.max(started.elapsed());
        match answer {
            Ok(Ok(answer)) if answer.status == 200 => tally.ok += 1,
            Ok(Ok(answer)) => *tally.statuses.entry(answer.status.as_u16()).or_default() += 1,
            Ok(Err(err)) => {
                tally.fail(&err);
                // A refused connection fails at once: not thousands a second.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                open = None;
                tally.fail("no answer within the timeout");
            }
        }
    }
    tally
}
