//! `palisade generate` (hidden): shell completions and man pages from the clap definition,
//! for the packages (packaging/build) and for installs from source. The pages are the
//! `--help` texts with the sections a man page needs on top (exit status, files,
//! environment, see also), so they never drift from the binary.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{CommandFactory, Subcommand, ValueEnum};
use clap_mangen::{
    Man,
    roff::{Roff, bold, italic, roman},
};

use super::Cli;

/// Generate shell completions or man pages from the command-line definition (for
/// packagers and installs from source).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Print the completion script for SHELL on stdout. Install it as
    /// /usr/share/bash-completion/completions/palisade (bash),
    /// /usr/share/zsh/vendor-completions/_palisade (zsh) or
    /// /usr/share/fish/vendor_completions.d/palisade.fish (fish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write palisade.8 and one page per subcommand (palisade-status.8,
    /// palisade-block-add.8, ...) into DIR, and print their paths.
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
}

/// The shells the packages install completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Self::Bash => clap_complete::Shell::Bash,
            Self::Zsh => clap_complete::Shell::Zsh,
            Self::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut Cli::command(), "palisade", &mut out);
    out
}

/// Exit statuses, as every page lists them.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Failure: the daemon failed or refused the request as invalid, a file could not be \
         read, or a check found problems.",
    ),
    (
        "2",
        "Usage error: a malformed command line, reported before any file is read or the \
         daemon is asked.",
    ),
    (
        "3",
        "The daemon is not running (nothing listens on the control socket).",
    ),
    (
        "4",
        "Permission denied: the caller may not use the control socket, or the daemon \
         refused the request for lack of privilege (changes need root; read-only requests \
         root or the control group).",
    ),
    ("5", "The daemon speaks another control protocol version."),
];

/// Every man page: (file name, roff text). palisade(8) first, then every subcommand,
/// depth first (hidden ones, such as `generate`, have none).
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    page(&root, true, &mut pages)?;
    Ok(pages)
}

fn page(cmd: &clap::Command, root: bool, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let man = Man::new(cmd.clone())
        .section("8")
        .manual("Palisade")
        .source(format!("palisade {}", env!("CARGO_PKG_VERSION")));
    let mut text = Vec::new();
    man.render_title(&mut text)?;
    man.render_name_section(&mut text)?;
    man.render_synopsis_section(&mut text)?;
    man.render_description_section(&mut text)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut text)?;
    }
    let subcommands: Vec<&clap::Command> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if !subcommands.is_empty() {
        man.render_subcommands_section(&mut text)?;
    }
    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_STATUS {
        extra.control("TP", []);
        extra.text([bold(*code)]);
        extra.text([roman(*meaning)]);
    }
    if root {
        extra.control("SH", ["FILES"]);
        for (path, what) in [
            (
                crate::paths::CONFIG_FILE,
                "The configuration, see palisade.toml(5). Every command reads it unless given \
                 --config; a missing one means the built-in defaults (the same settings).",
            ),
            (
                crate::paths::CONTROL_SOCKET,
                "The control socket (root:palisade, 0660), `paths.control_socket`.",
            ),
            (
                crate::paths::PIN_ROOT,
                "Pinned maps and links, below v<ABI>/, `paths.pin_root`.",
            ),
            (
                crate::paths::LOG_DIR,
                "Event logs, one JSON-lines file per protocol, `paths.log_dir`.",
            ),
            (
                crate::paths::STATE_DIR,
                "State kept across restarts (runtime IP rules), `paths.state_dir`.",
            ),
        ] {
            extra.control("TP", []);
            extra.text([italic(path)]);
            extra.text([roman(what)]);
        }
        extra.control("SH", ["ENVIRONMENT"]);
        extra.control("TP", []);
        extra.text([bold("PALISADE_LOG")]);
        extra.text([roman(
            "Log filter of the daemon's own messages (stderr, journald under systemd): \
             info by default, e.g. debug, or palisade=debug,aya=warn.",
        )]);
        extra.control("TP", []);
        extra.text([bold("NO_COLOR")]);
        extra.text([roman("When set, log lines carry no colour codes.")]);
    }
    extra.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = Vec::new();
    if !root {
        see.push("palisade(8)".into());
    }
    see.push("palisade.toml(5)".into());
    see.extend(["systemctl(1)", "journalctl(1)", "bpftool(8)"].map(String::from));
    extra.text([roman(see.join(", "))]);
    extra.to_writer(&mut text)?;
    out.push((man.get_filename(), text));
    for sub in subcommands {
        page(sub, false, out)?;
    }
    Ok(())
}

/// Writes every man page into `dir`; returns their paths.
pub fn write_man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in man_pages()? {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

pub fn main(args: Args) -> ExitCode {
    match args.what {
        What::Completions { shell } => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(&completion(shell))
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("palisade: writing the completion script: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        What::Man { dir } => match write_man_pages(&dir) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("palisade: writing man pages to {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_visible_command() {
        let pages = man_pages().expect("render");
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "palisade.8",
            "palisade-run.8",
            "palisade-status.8",
            "palisade-check-config.8",
            "palisade-block.8",
            "palisade-block-add.8",
            "palisade-dns-test.8",
            "palisade-flows-top.8",
            "palisade-cleanup.8",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("generate") || n.contains("help")),
            "{names:?}"
        );
        let status = pages
            .iter()
            .find(|(n, _)| n == "palisade-status.8")
            .map(|(_, t)| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_default();
        for want in [
            ".TH palisade-status 8",
            "\\-\\-json",
            "\\-\\-config",
            "EXIT STATUS",
        ] {
            assert!(status.contains(want), "{want} not in:\n{status}");
        }
    }

    #[test]
    fn the_packages_ship_every_page_and_completion() {
        let manifest: toml::Table =
            toml::from_str(include_str!("../../Cargo.toml")).expect("supervisor/Cargo.toml");
        let metadata = &manifest["package"]["metadata"];
        let rpm: Vec<String> = metadata["generate-rpm"]["assets"]
            .as_array()
            .expect("rpm assets")
            .iter()
            .filter_map(|a| a.get("dest").and_then(toml::Value::as_str))
            .map(str::to_owned)
            .collect();
        let mut pages: Vec<String> = man_pages()
            .expect("render")
            .into_iter()
            .map(|(name, _)| format!("/usr/share/man/man8/{name}.gz"))
            .collect();
        let mut listed: Vec<String> = rpm
            .iter()
            .filter(|d| d.starts_with("/usr/share/man/man8/"))
            .cloned()
            .collect();
        pages.sort();
        listed.sort();
        assert_eq!(listed, pages, "RPM man pages vs palisade generate man");
        let deb = metadata["deb"]["assets"].to_string();
        assert!(deb.contains("../target/cli/man/*.8"), "{deb}");
        for dest in [
            "/usr/share/bash-completion/completions/palisade",
            "/usr/share/zsh/vendor-completions/_palisade",
            "/usr/share/fish/vendor_completions.d/palisade.fish",
        ] {
            assert!(rpm.iter().any(|d| d == dest), "RPM lacks {dest}");
            assert!(
                deb.contains(dest.trim_start_matches('/')),
                "deb lacks {dest}"
            );
        }
    }

    #[test]
    fn completions_know_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(completion(shell)).expect("utf-8");
            for cmd in ["check-config", "reopen-logs", "blocked-hits"] {
                assert!(text.contains(cmd), "{shell:?} lacks {cmd}");
            }
        }
    }
}
