//! The `keel` binary: argument parsing, layered configuration, wiring, exit codes.

mod approve;
mod chat;
mod cli;
mod config;
mod doctor;
mod eval_cmd;
mod map_cmd;
mod mcp_cmd;
mod memory_cmd;
mod model;
mod printer;
mod run;
mod serve;
mod sessions_cmd;
mod tool_cmd;
mod trust;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("keel: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Chat(Default::default())) {
            Command::Chat(args) => chat::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Tool(args) => tool_cmd::call(args).await,
            Command::Tools(args) => tool_cmd::list(args),
            Command::Sessions(command) => sessions_cmd::run(command),
            Command::Memory(args) => memory_cmd::run(args),
            Command::Doctor(args) => doctor::run(args.model, args.workspace, args.fix).await,
            Command::Model(command) => model::run(command),
            Command::Serve(args) => serve::run(args).await,
            Command::Mcp(args) => mcp_cmd::run(args).await,
            Command::Eval(args) => eval_cmd::run(args).await,
            Command::Trust(args) => trust::run(args),
            Command::Map(args) => map_cmd::run(args),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("keel: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
