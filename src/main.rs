//! The `winback` binary: parse arguments, start logging, run, map the result to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// A large import builds rows on one thread and frees them on another; the system
/// allocator serialises that on a lock, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = winback::cli::Cli::parse();
    if matches!(cli.command, winback::cli::Command::Run { .. }) {
        ignore_sighup_until_handled();
    } else {
        restore_default_sigpipe();
    }
    let logs = winback::cli::init_logging(cli.log_format);
    let result = winback::cli::run(cli);
    // The log lines first, then the error that ends the run.
    drop(logs);
    match result {
        Ok(code) => code,
        Err(e) => {
            // Not `eprintln!`: it panics when stderr cannot be written.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets `winback plan | head` end quietly, as other command-line tools do, instead of
/// panicking on a closed pipe. Not for the daemon: there a peer closing a socket must be
/// an error to handle, never a signal that kills the process.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// SIGHUP asks the daemon to reload; until its handler is installed (once the runtime
/// runs), one must not end the process, as it would by default.
fn ignore_sighup_until_handled() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; SIG_IGN is a valid disposition.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}
