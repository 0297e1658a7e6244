//! The `hello-edge` binary: parses the command line and hands off to
//! [`hello_edge_native::server::run`] (with SIGINT and SIGTERM as its shutdown), or, for
//! `hello-edge heads`, to [`hello_edge_native::heads::fetch_all`].

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hello_edge::Delay;
use hello_edge_native::heads::{self, Head};
use hello_edge_native::{ServerConfig, Shutdown};
use http::{Method, Uri};
use tracing_subscriber::EnvFilter;

/// hello-edge: `GET /` and `GET /hello/{name}`, each after a non-blocking delay.
///
/// Run without a subcommand, it serves.
#[derive(Debug, Parser)]
#[command(name = "hello-edge", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve hello-edge over HTTP (the default).
    Serve(ServeArgs),
    /// Fetch the response heads of many URLs at once, printing each as it arrives.
    Heads(HeadsArgs),
}

#[derive(Debug, Args)]
struct HeadsArgs {
    /// The URLs to fetch, http:// or https://.
    #[arg(required = true, value_parser = parse_url)]
    urls: Vec<Uri>,

    /// The request method; with GET the body is not read.
    #[arg(long, value_enum, default_value_t = HeadsMethod::Get)]
    method: HeadsMethod,

    /// The longest one URL may take, such as `10s` or `500ms`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// How many URLs are fetched at once, at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,

    /// Print one JSON object per URL (url, status, status_line, headers, elapsed_ms, error).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HeadsMethod {
    Get,
    Head,
}

fn parse_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|err| format!("{err}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err("expected an http:// or https:// URL with a host".to_owned()),
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines, coloured only on a terminal (and never with `NO_COLOR` set).
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = "HELLO_EDGE_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,

    /// Where to serve liveness (`/healthz`) and Prometheus metrics (`/metrics`), apart from the
    /// app's port and its connection cap; off unless given. Port 0 picks a free port.
    #[arg(long, env = "HELLO_EDGE_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,

    /// The wait before each successful answer, in milliseconds (0 to 60000).
    #[arg(long, env = hello_edge::Config::DELAY_ENV,
          default_value_t = DelayMs(ServerConfig::DEFAULT.app.delay))]
    delay_ms: DelayMs,

    /// On SIGINT or SIGTERM, how long requests in flight may take to finish, in seconds.
    #[arg(long, env = "HELLO_EDGE_SHUTDOWN_GRACE_SECS",
          default_value_t = ServerConfig::DEFAULT.grace.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=ServerConfig::MAX_TIMEOUT_SECS))]
    shutdown_grace_secs: u64,

    /// How long a client may take to send a request's head, and how long a connection with no
    /// request in flight stays open, in seconds.
    #[arg(long, env = "HELLO_EDGE_HEADER_TIMEOUT_SECS",
          default_value_t = ServerConfig::DEFAULT.header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=ServerConfig::MAX_TIMEOUT_SECS))]
    header_timeout_secs: u64,

    /// The most connections served at once; past it, new clients wait in the listen backlog
    /// (4,096) until a connection closes.
    #[arg(long, env = "HELLO_EDGE_MAX_CONNECTIONS",
          default_value_t = ServerConfig::DEFAULT.max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(1..=ServerConfig::MAX_CONNECTIONS_LIMIT as u64))]
    max_connections: usize,

    /// How log lines are written to stderr.
    #[arg(long, env = "HELLO_EDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
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
    let format = match &cli.command {
        Some(Command::Serve(args)) => args.log_format,
        Some(Command::Heads(_)) => LogFormat::Text,
        None => cli.serve.log_format,
    };
    init_logging(format);

    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Heads(args)) => fetch_heads(args),
        None => serve(cli.serve),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hello-edge: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr with tracing, filtered by `RUST_LOG` (default: info for hello-edge's crates).
/// Text is coloured only on a terminal and never when `NO_COLOR` is set (no-color.org).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("hello_edge=info,hello_edge_native=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig {
        app: hello_edge::Config::with_delay(args.delay_ms.0),
        grace: Duration::from_secs(args.shutdown_grace_secs),
        header_read_timeout: Duration::from_secs(args.header_timeout_secs),
        max_connections: args.max_connections,
    };
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

fn fetch_heads(args: HeadsArgs) -> anyhow::Result<ExitCode> {
    let options = heads::Options {
        method: match args.method {
            HeadsMethod::Get => Method::GET,
            HeadsMethod::Head => Method::HEAD,
        },
        timeout: args.timeout,
        concurrency: args.concurrency.into(),
    };
    // One thread, one event loop: the requests overlap because they wait, not because of threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let summary = runtime.block_on(heads::fetch_all(args.urls, &options, |head: &Head| {
        let text = if args.json {
            head.to_json() + "\n"
        } else {
            head.to_text()
        };
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (`| head`) is no reason to stop the others.
        let _ = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
    }));
    eprintln!("hello-edge heads: {summary}");
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
