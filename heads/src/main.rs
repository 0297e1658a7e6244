//! `hello-edge-heads`: fetches the response heads of many URLs at once and prints each as it
//! arrives, so the whole run takes as long as the slowest URL, not the sum. It parses the command
//! line and hands off to [`hello_edge_heads::fetch_all`], on one thread and one event loop.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hello_edge_heads::{Head, Options, fetch_all};
use http::{Method, Uri};

/// Fetch the response heads of many URLs at once, printing each as it arrives.
#[derive(Debug, Parser)]
#[command(name = "hello-edge-heads", version)]
struct Cli {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match fetch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hello-edge-heads: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = Options {
        method: match cli.method {
            HeadsMethod::Get => Method::GET,
            HeadsMethod::Head => Method::HEAD,
        },
        timeout: cli.timeout,
        concurrency: cli.concurrency.into(),
    };
    // One thread, one event loop: the requests overlap because they wait, not because of threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let summary = runtime.block_on(fetch_all(cli.urls, &options, |head: &Head| {
        let text = if cli.json {
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
    eprintln!("hello-edge-heads: {summary}");
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
