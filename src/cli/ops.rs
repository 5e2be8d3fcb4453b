//! Keeping the daemon running: `backup` (a consistent copy of the live database),
//! `secret rotate` (a new link key) and `completions` (shell completion scripts).
//!
//! `backup` uses SQLite's online backup through `Store::backup_to`, so it is safe while
//! the daemon runs; it writes beside the target and renames into place, so an interrupted
//! backup never leaves a half-written file under the name asked for.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, load_config, open_store, output};

pub(super) fn backup(cli: &Cli, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let database = &setup.config.database_path;
    if !database.exists() {
        bail!(
            "there is no database at {} to back up yet (the first `winback import` or `winback run` creates it)",
            database.display()
        );
    }
    let target = output::output_path(&setup.config, file, force)?;
    let store = open_store(&setup.config)?;
    let partial = output::partial_path(&target)?;
    if let Err(e) = store.backup_to(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(e)
            .with_context(|| format!("backing up {} to {}", database.display(), target.display()));
    }
    if let Err(e) = std::fs::rename(&partial, &target) {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| {
            format!(
                "moving the finished backup into place at {}",
                target.display()
            )
        });
    }
    let size = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({}).",
        database.display(),
        target.display(),
        human_size(size)
    );
    Ok(ExitCode::SUCCESS)
}

/// `1234567` → `1234567 bytes, 1.2 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = None;
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = Some(u);
    }
    match unit {
        Some(unit) => format!("{bytes} bytes, {value:.1} {unit}"),
        None => format!("{bytes} bytes"),
    }
}

/// `winback secret rotate`: a new random link key beside the others, which signs new
/// mail from the daemon's next start. A `WINBACK_SECRET` not kept yet is kept first, so
/// the new key is the newest.
pub(super) fn rotate_secret(cli: &Cli) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    crate::setup::load_secret(&mut store, &setup.secrets)?;
    let id = store
        .add_link_key(crate::token::Secret::generate().to_bytes())?
        .context("a new random key was already kept; run the command again")?;
    println!(
        "made link key {id}. Restart the daemon (systemctl restart winback): new mail is then signed with it. Links signed by the earlier keys keep working; keys are never removed."
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn completions(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_shows_an_example_in_its_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let has_example = sub
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("Example"));
                if !has_example {
                    missing.push(path.clone());
                }
                check(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "winback", &mut missing);
        assert!(
            missing.is_empty(),
            "no `Example:` in the --help of: {missing:?}"
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_read_like_a_person_wrote_them() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1536 bytes, 1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3145728 bytes, 3.0 MiB");
    }
}
