//! The `regentra` binary: parse the command line, validate the configuration once, set up
//! logging, run the command. Everything else lives in the library (`regentra::cli`).

use std::process::ExitCode;

use clap::Parser as _;
use regentra::cli::Cli;
use regentra::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.command.config_flags()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("regentra: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_filter);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("regentra: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(regentra::cli::run(cli.command, config)) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the context chain on one line: "starting Regentra: opening …: …".
            eprintln!("regentra: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Human-readable logs on stderr, filtered by `REGENTRA_LOG` / `--log` (already validated).
fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(regentra::config::DEFAULT_LOG_FILTER)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
