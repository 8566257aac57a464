//! `emailengine`: the server and its command-line tools, compatible with EmailEngine 2.x.
//!
//! `main` reads the arguments, picks the command ([`commands`]) or starts the server
//! ([`server`], which serves HTTP through [`http`] within the [`descriptors`] budget).
//! Configuration is loaded once ([`config`]) and passed down; the logger ([`logging`]) is
//! installed only for the server.

mod cli;
mod commands;
mod config;
mod descriptors;
mod http;
mod logging;
mod server;

use std::process::ExitCode;

use cli::Args;

fn main() -> ExitCode {
    let args = Args::parse(std::env::args().skip(1));
    let command = args.positional.first().map(|c| c.to_ascii_lowercase());
    match command.as_deref() {
        None if args.flag("help") => commands::help(None),
        None if args.flag("version") => commands::version(),
        None => run_server(&args),
        Some("help") => commands::help(args.positional.get(1).map(String::as_str)),
        Some("version") => commands::version(),
        Some(cmd @ ("tokens" | "password" | "encrypt" | "migrate")) => {
            if args.flag("help") {
                return commands::help(Some(cmd));
            }
            let config = match config::load(&args, &config::process_env) {
                Ok(c) => c,
                Err(e) => return commands::fail(&e),
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return commands::fail(&format!("Failed to start: {e}")),
            };
            runtime.block_on(commands::run(cmd, &args, &config))
        }
        Some(other) => {
            eprintln!(
                "Unknown command: {other}. Run \"emailengine help\" for the list of commands."
            );
            ExitCode::FAILURE
        }
    }
}

fn run_server(args: &Args) -> ExitCode {
    let config = match config::load(args, &config::process_env) {
        Ok(c) => c,
        Err(e) => return commands::fail(&e),
    };
    logging::init(config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return commands::fail(&format!("Failed to start: {e}")),
    };
    runtime.block_on(server::run(config))
}
