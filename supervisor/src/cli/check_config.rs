//! `palisade check-config`.

use crate::policy::tls::TlsPolicyError;
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde::Serialize;

use crate::{
    config::{Config, ConfigError},
    policy::{
        bad_lines::BadLines, dns::RuleSet, dns::RuleSetError, dns_lists::ListError, ip::IpRuleSet,
        ip_lists::IpListError,
    },
    users::{AccountError, AccountErrors},
};

/// Validate a configuration file, every list it names, the worker accounts and the log
/// group (`paths.log_group` must exist).
///
/// Nothing is applied. Runs the checks `palisade run` and `palisade reload` run before they change anything:
/// the file itself (stops at its first error, naming file, line and key); then every DNS,
/// regex and IP list, where every bad line is reported (the first 20 per file by
/// FILE:LINE, then a count of the rest); then the workers' accounts: a user or group set in
/// [workers.<worker>] must exist, and no worker may run as an account others share unless
/// `allow_shared_account = true`.
///
/// Prints `FILE: OK` and exits 0, or one problem per line on stderr and exits 1.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check [default: --config, or /etc/palisade/palisade.toml].
    #[arg(value_name = "FILE", conflicts_with = "config")]
    file: Option<PathBuf>,
    /// The file to check (the same as FILE).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the result as JSON: {"config", "ok", "errors": [{"file", "line",
    /// "message"}], "errors_not_shown"}.
    #[arg(long)]
    json: bool,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file it is in (`None`: not one file's, such as a limit on all regexes).
    pub file: Option<PathBuf>,
    /// Its line there, when known.
    pub line: Option<usize>,
    /// What is wrong (without file and line).
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: {}", file.display(), self.message),
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// What `check-config --json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file checked.
    pub config: PathBuf,
    /// No problem found.
    pub ok: bool,
    /// The problems, in the order checked.
    pub errors: Vec<Problem>,
    /// Bad list lines counted but not listed (beyond 20 per file).
    pub errors_not_shown: usize,
}

impl Report {
    fn add_bad_lines(&mut self, bad: &BadLines) {
        self.errors.extend(bad.shown.iter().map(|b| Problem {
            file: Some(bad.path.clone()),
            line: Some(b.line),
            message: b.problem.clone(),
        }));
        self.errors_not_shown += bad.not_shown();
    }

    fn add_config(&mut self, e: &ConfigError) {
        self.errors.push(match e {
            ConfigError::Invalid {
                origin,
                line,
                key,
                problem,
            } => Problem {
                file: Some(origin.into()),
                line: Some(*line),
                message: format!("{key}: {problem}"),
            },
            ConfigError::Read { path, source } => Problem {
                file: Some(path.into()),
                line: None,
                message: format!("cannot read: {source}"),
            },
            ConfigError::Syntax { origin, message } => Problem {
                file: Some(origin.into()),
                line: None,
                message: message.clone(),
            },
        });
    }

    fn add_ip(&mut self, e: &IpListError) {
        match e {
            IpListError::Read { path, source } => self.errors.push(Problem {
                file: Some(path.clone()),
                line: None,
                message: format!("cannot read: {source}"),
            }),
            IpListError::Lines(bad) => self.add_bad_lines(bad),
            IpListError::Several(all) => all.iter().for_each(|e| self.add_ip(e)),
        }
    }

    fn add_dns(&mut self, e: &RuleSetError) {
        match e {
            RuleSetError::List(ListError::Read { path, source }) => self.errors.push(Problem {
                file: Some(path.clone()),
                line: None,
                message: format!("cannot read: {source}"),
            }),
            RuleSetError::List(ListError::Lines(bad)) | RuleSetError::Regex(bad) => {
                self.add_bad_lines(bad);
            }
            RuleSetError::Several(all) => all.iter().for_each(|e| self.add_dns(e)),
            RuleSetError::RegexSet(_) | RuleSetError::TooMany => self.errors.push(Problem {
                file: None,
                line: None,
                message: crate::error_chain(e),
            }),
        }
    }

    fn add_tls(&mut self, e: &TlsPolicyError) {
        match e {
            TlsPolicyError::Read { path, source } => self.errors.push(Problem {
                file: Some(path.clone()),
                line: None,
                message: format!("cannot read: {source}"),
            }),
            TlsPolicyError::BadLines(bad) => self.add_bad_lines(bad),
            TlsPolicyError::Several(all) => all.iter().for_each(|e| self.add_tls(e)),
            other => self.errors.push(Problem {
                file: None,
                line: None,
                message: crate::error_chain(other),
            }),
        }
    }

    fn add_accounts(&mut self, errors: &AccountErrors, config: &Path) {
        for e in &errors.0 {
            match e {
                AccountError::Missing(c) => self.add_config(c),
                other => self.errors.push(Problem {
                    file: Some(config.to_owned()),
                    line: None,
                    message: crate::error_chain(other),
                }),
            }
        }
    }
}

/// Every check, every problem.
pub fn check(file: &Path) -> Report {
    let mut report = Report {
        config: file.to_owned(),
        ok: false,
        errors: Vec::new(),
        errors_not_shown: 0,
    };
    match Config::load(Some(file)) {
        Err(e) => report.add_config(&e),
        Ok(config) => {
            if let Some(Err(e)) = config.log_group.as_ref().map(|g| g.resolve()) {
                report.add_config(&e);
            }
            if let Err(e) = RuleSet::load(&config.dns.lists) {
                report.add_dns(&e);
            }
            if let Err(e) = IpRuleSet::load(&config.ip.blocklists) {
                report.add_ip(&e);
            }
            if let Err(e) = crate::policy::tls::load_lists(&config.tls.rules) {
                report.add_tls(&e);
            }
            if let Err(e) = crate::users::worker_accounts(&config) {
                report.add_accounts(&e, file);
            }
            if let Some(Err(message)) = config
                .control_tcp
                .as_ref()
                .map(|t| crate::control::token::Token::read(&t.token_file))
            {
                report.errors.push(Problem {
                    file: Some(file.to_owned()),
                    line: None,
                    message: format!("control.token_file: {message}"),
                });
            }
        }
    }
    report.ok = report.errors.is_empty() && report.errors_not_shown == 0;
    report
}

pub fn main(args: Args) -> ExitCode {
    let file = args
        .file
        .or(args.config)
        .unwrap_or_else(|| PathBuf::from(crate::paths::CONFIG_FILE));
    let report = check(&file);
    if args.json {
        let code = super::print_json(&report);
        if !report.ok {
            return ExitCode::FAILURE;
        }
        return code;
    }
    if report.ok {
        println!("{}: OK", file.display());
        return ExitCode::SUCCESS;
    }
    for problem in &report.errors {
        eprintln!("palisade: {problem}");
    }
    if report.errors_not_shown > 0 {
        eprintln!(
            "palisade: and {} more bad list lines not shown (the first {} of each file are)",
            report.errors_not_shown,
            crate::policy::bad_lines::MAX_SHOWN
        );
    }
    let n = report.errors.len() + report.errors_not_shown;
    eprintln!(
        "palisade: {}: {n} {}",
        file.display(),
        if n == 1 { "problem" } else { "problems" }
    );
    ExitCode::FAILURE
}
