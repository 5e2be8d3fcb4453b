//! The `winback` binary: parse arguments, start logging, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = winback::cli::Cli::parse();
    winback::cli::init_logging(cli.log_format);
    match winback::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
