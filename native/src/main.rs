//! The `hello-edge` binary: parses the command line (flags, or environment variables when a
//! flag is not given) and hands off to [`hello_edge_native::server::run`], with SIGINT and
//! SIGTERM as its shutdown.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hello_edge::Delay;
use hello_edge_native::traces::{self, Traces};
use hello_edge_native::{ServerConfig, Shutdown, env};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines, coloured only on a terminal (and never with `NO_COLOR` set).
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// hello-edge: `GET /` and `GET /hello/{name}`, each after a non-blocking delay.
#[derive(Debug, Parser)]
#[command(name = "hello-edge", version)]
struct Cli {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = env::LISTEN, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,

    /// Where to serve liveness (`/healthz`) and Prometheus metrics (`/metrics`), apart from the
    /// app's port and its connection cap; off unless given. Port 0 picks a free port.
    #[arg(long, env = env::ADMIN_LISTEN)]
    admin_listen: Option<SocketAddr>,

    /// The wait before each successful answer, in milliseconds (0 to 60000).
    #[arg(long, env = env::DELAY_MS,
          default_value_t = DelayMs(ServerConfig::DEFAULT.app.delay))]
    delay_ms: DelayMs,

    /// On SIGINT or SIGTERM, how long requests in flight may take to finish, in seconds.
    #[arg(long, env = env::SHUTDOWN_GRACE_SECS,
          default_value_t = ServerConfig::DEFAULT.grace.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=ServerConfig::MAX_TIMEOUT_SECS))]
    shutdown_grace_secs: u64,

    /// How long a client may take to send a request's head, and how long a connection with no
    /// request in flight stays open, in seconds.
    #[arg(long, env = env::HEADER_TIMEOUT_SECS,
          default_value_t = ServerConfig::DEFAULT.header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=ServerConfig::MAX_TIMEOUT_SECS))]
    header_timeout_secs: u64,

    /// The most connections served at once; past it, new clients wait in the listen backlog
    /// until a connection closes.
    #[arg(long, env = env::MAX_CONNECTIONS,
          default_value_t = ServerConfig::DEFAULT.max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(1..=ServerConfig::MAX_CONNECTIONS_LIMIT as u64))]
    max_connections: usize,

    /// How log lines are written to stderr.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A delay on the command line: whole milliseconds, parsed by the core
/// ([`Delay::from_millis_str`]), and shown the same way (as the default in `--help`).
#[derive(Debug, Clone, Copy)]
struct DelayMs(Delay);

impl std::str::FromStr for DelayMs {
    type Err = hello_edge::ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Delay::from_millis_str(s).map(DelayMs)
    }
}

impl std::fmt::Display for DelayMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_duration().as_millis())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let otel = traces::Settings::from_env(|name| std::env::var(name).ok());
    // Built under the log alone, so that what the SDK says of its settings (an unknown sampler)
    // is logged.
    let exporter = otel.endpoint.as_ref().map(|_| {
        let log = tracing_subscriber::registry().with(log_layer(cli.log_format));
        tracing::subscriber::with_default(log, Traces::start)
    });
    let traces = exporter.as_ref().and_then(|started| started.as_ref().ok());
    init_logging(cli.log_format, traces);
    for warning in &otel.warnings {
        tracing::warn!("{warning}");
    }
    match (&otel.endpoint, &exporter) {
        (Some(endpoint), Some(Ok(_))) => tracing::info!(endpoint, "exporting traces over OTLP"),
        (_, Some(Err(err))) => tracing::error!("no traces are exported: {err:#}"),
        _ => {}
    }
    let outcome = serve(cli);
    if let Some(Ok(traces)) = exporter {
        traces.shutdown();
    }
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hello-edge: {err:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    /// How the server runs, from the flags.
    fn server_config(&self) -> ServerConfig {
        ServerConfig {
            app: hello_edge::Config::with_delay(self.delay_ms.0),
            grace: Duration::from_secs(self.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(self.header_timeout_secs),
            max_connections: self.max_connections,
        }
    }
}

/// The log's filter when `RUST_LOG` is not set: hello-edge's crates at info, and the warnings of
/// the OpenTelemetry SDK and exporter (spans dropped, an export that failed).
const DEFAULT_LOG: &str = "hello_edge=info,hello_edge_native=info,opentelemetry=warn";

/// Logs to stderr with tracing, filtered by `RUST_LOG` ([`log_layer`]), and, with `traces`,
/// exports each request's span. The log's filter is its own: it never hides a request's span
/// from the exporter, which takes those spans only.
fn init_logging(format: LogFormat, traces: Option<&Traces>) {
    tracing_subscriber::registry()
        .with(log_layer(format))
        .with(traces.map(Traces::layer))
        .init();
}

/// The log: to stderr, filtered by `RUST_LOG` (default: [`DEFAULT_LOG`]). Text is coloured only
/// on a terminal and never when `NO_COLOR` is set (no-color.org).
fn log_layer(format: LogFormat) -> impl Layer<Registry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            log.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .boxed()
        }
        LogFormat::Json => log.json().with_ansi(false).boxed(),
    };
    log.with_filter(filter)
}

fn serve(args: Cli) -> anyhow::Result<ExitCode> {
    let config = args.server_config();
    // Each connection is a file descriptor: take as many as the hard limit allows.
    let open_files = rlimit::increase_nofile_limit(u64::MAX).ok();
    if let Some(limit) = open_files
        && limit < (args.max_connections as u64).saturating_add(64)
    {
        tracing::warn!(
            open_files = limit,
            max_connections = args.max_connections,
            "the open-file limit is below the connection cap: past it, accepting fails until \
             connections close (the server waits and retries)"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        // Before saying it serves, so that a signal from then on drains.
        let shutdown =
            hello_edge_native::shutdown_signal().context("installing signal handlers")?;
        let listener = hello_edge_native::bind(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let admin = match args.admin_listen {
            Some(addr) => Some(
                hello_edge_native::bind(addr)
                    .with_context(|| format!("cannot listen for admin on {addr}"))?,
            ),
            None => None,
        };
        let addr = listener.local_addr()?;
        println!("{}", hello_edge_native::serving_line(addr));
        if let Some(admin) = &admin {
            println!("{}", hello_edge_native::admin_line(admin.local_addr()?));
        }
        std::io::stdout().flush()?;
        tracing::info!(%addr, delay = %args.delay_ms.0, ?open_files, "listening");

        let outcome = hello_edge_native::run(listener, admin, config, shutdown).await;
        Ok(match outcome {
            Shutdown::Drained => ExitCode::SUCCESS,
            Shutdown::GraceExpired { aborted } => {
                eprintln!("hello-edge: cut off {aborted} unfinished requests at shutdown");
                ExitCode::FAILURE
            }
        })
    })
}
