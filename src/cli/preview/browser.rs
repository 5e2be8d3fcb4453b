//! Opening a written file in the desktop's browser, for `--open`. Never fails a
//! command: the file is written either way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `--open` waits to hear whether the browser launcher failed.
const OPENER_WAIT: Duration = Duration::from_secs(5);

/// Opens `path` in the desktop's browser (`xdg-open`, or `open` on macOS). A launcher
/// that is missing or fails is a warning: the file is written either way.
pub(super) fn open(path: &Path) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let path: PathBuf = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let spawned = Command::new(opener)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "warning: could not start {opener} to open {} ({e}); open the file yourself.",
                path.display()
            );
            return;
        }
    };
    // Launchers return quickly once a browser has the file; one still running is fine.
    let deadline = Instant::now() + OPENER_WAIT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => {
                eprintln!(
                    "warning: {opener} could not open {} ({status}); open the file yourself.",
                    path.display()
                );
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return,
        }
    }
}
