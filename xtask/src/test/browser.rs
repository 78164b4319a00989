//! Before the `test` step: make sure headless Chromium and chromedriver are there for
//! the dashboard's real-browser test (`tests/dashboard_browser.rs`).
//!
//! When either is missing, Debian's `chromium` and `chromium-driver` packages are
//! installed with apt-get, as root or through `sudo -n` (never prompting). When that is
//! not possible, a loud warning is printed and the test step runs with
//! `WEFT_BROWSER_TESTS=skip: <why>`, which the browser test reads to skip with a banner
//! instead of failing. A caller who already set `WEFT_BROWSER_TESTS` is left alone.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The environment variable the browser test reads.
pub(crate) const ENV: &str = "WEFT_BROWSER_TESTS";

/// The names the browser test looks for on `PATH`.
const BROWSERS: &[&str] = &["chromium", "chromium-browser", "google-chrome"];
const DRIVERS: &[&str] = &["chromedriver"];
/// The Debian packages that provide them.
const PACKAGES: &[&str] = &["chromium", "chromium-driver"];

/// What the machine offers, as far as installing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    /// A Chromium binary is on `PATH`.
    pub(crate) browser: bool,
    /// chromedriver is on `PATH`.
    pub(crate) driver: bool,
    /// `apt-get` is on `PATH`.
    pub(crate) apt: bool,
    /// We run as root.
    pub(crate) root: bool,
    /// `sudo -n true` succeeds (sudo without a password prompt).
    pub(crate) sudo: bool,
}

/// What to do about the browser before the test step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Both binaries are there.
    Ready,
    /// Install the packages, through `sudo -n` when `sudo` is true.
    Install {
        /// Prefix apt-get with `sudo -n`.
        sudo: bool,
    },
    /// Run the tests with the browser test skipped, for this reason.
    Skip(String),
}

/// The plan for `m`.
pub(crate) fn plan(m: Machine) -> Plan {
    if m.browser && m.driver {
        return Plan::Ready;
    }
    let missing = match (m.browser, m.driver) {
        (false, false) => "chromium and chromedriver are",
        (false, true) => "chromium is",
        _ => "chromedriver is",
    };
    if !m.apt {
        return Plan::Skip(format!(
            "{missing} not installed and there is no apt-get to install them"
        ));
    }
    if m.root {
        Plan::Install { sudo: false }
    } else if m.sudo {
        Plan::Install { sudo: true }
    } else {
        Plan::Skip(format!(
            "{missing} not installed, and installing needs root or password-less sudo"
        ))
    }
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn quietly(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn machine() -> Machine {
    let root = is_root();
    Machine {
        browser: on_path(BROWSERS).is_some(),
        driver: on_path(DRIVERS).is_some(),
        apt: on_path(&["apt-get"]).is_some(),
        root,
        sudo: !root && on_path(&["sudo"]).is_some() && quietly("sudo", &["-n", "true"]),
    }
}

fn apt(sudo: bool, args: &[&str]) -> Command {
    let mut command = if sudo {
        let mut c = Command::new("sudo");
        c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    } else {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    command.args(args);
    command
}

fn install(sudo: bool) -> Result<(), String> {
    println!(
        "[xtask] the dashboard browser test needs Chromium and chromedriver: installing {}",
        PACKAGES.join(" ")
    );
    super::run_command(&mut apt(sudo, &["update"]))?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(PACKAGES);
    super::run_command(&mut apt(sudo, &args))?;
    if on_path(BROWSERS).is_none() || on_path(DRIVERS).is_none() {
        return Err(
            "the packages installed but chromium or chromedriver is still not on PATH".into(),
        );
    }
    Ok(())
}

fn warn(reason: &str) {
    let bar = "!".repeat(78);
    println!("[xtask] {bar}");
    println!("[xtask] WARNING: the dashboard browser test will be SKIPPED: {reason}");
    println!(
        "[xtask] install them with: apt-get install -y --no-install-recommends {}",
        PACKAGES.join(" ")
    );
    println!("[xtask] {bar}");
}

/// Makes sure the browser test can run; returns the skip reason when it cannot (the
/// caller passes it to the test step as `WEFT_BROWSER_TESTS=skip: <reason>`).
pub(crate) fn prepare() -> Option<String> {
    if let Ok(setting) = std::env::var(ENV) {
        println!("[xtask] {ENV}={setting} is set: the browser is not checked");
        return None;
    }
    let reason = match plan(machine()) {
        Plan::Ready => return None,
        Plan::Install { sudo } => match install(sudo) {
            Ok(()) => return None,
            Err(e) => format!("installing Chromium failed: {e}"),
        },
        Plan::Skip(reason) => reason,
    };
    warn(&reason);
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Machine = Machine {
        browser: true,
        driver: true,
        apt: true,
        root: true,
        sudo: false,
    };

    #[test]
    fn installed_means_ready_whatever_else() {
        assert_eq!(
            plan(Machine {
                apt: false,
                root: false,
                ..ALL
            }),
            Plan::Ready
        );
    }

    #[test]
    fn missing_installs_as_root_or_with_sudo() {
        let m = Machine {
            browser: false,
            ..ALL
        };
        assert_eq!(plan(m), Plan::Install { sudo: false });
        assert_eq!(
            plan(Machine {
                root: false,
                sudo: true,
                ..m
            }),
            Plan::Install { sudo: true }
        );
        assert_eq!(
            plan(Machine {
                driver: false,
                root: false,
                sudo: true,
                ..ALL
            }),
            Plan::Install { sudo: true }
        );
    }

    #[test]
    fn missing_without_a_way_to_install_skips_with_a_reason() {
        let Plan::Skip(why) = plan(Machine {
            driver: false,
            root: false,
            sudo: false,
            ..ALL
        }) else {
            panic!("expected a skip")
        };
        assert!(
            why.contains("chromedriver is not installed") && why.contains("sudo"),
            "{why}"
        );
        let Plan::Skip(why) = plan(Machine {
            browser: false,
            driver: false,
            apt: false,
            ..ALL
        }) else {
            panic!("expected a skip")
        };
        assert!(
            why.contains("chromium and chromedriver") && why.contains("apt-get"),
            "{why}"
        );
    }

    #[test]
    fn sudo_installs_never_prompt() {
        let c = apt(true, &["install", "-y", "chromium"]);
        assert_eq!(c.get_program(), "sudo");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..2], ["-n", "env"]);
        assert!(args.contains(&"DEBIAN_FRONTEND=noninteractive".to_owned()));
        let c = apt(false, &["update"]);
        assert_eq!(c.get_program(), "apt-get");
    }
}
