//! `palisade feature ...`.

use std::process::ExitCode;

use clap::{Subcommand, builder::PossibleValuesParser};
use palisade_ipc::messages::{ControlRequest, ControlResponse, FeatureState};
use serde::Serialize;

use super::ControlArgs;
use crate::features::Feature;

/// Runtime feature switches: turn enforcement and capture off and on without editing the
/// configuration.
///
/// `dns-blocking`: the kernel's domain blocking (the DNS policy; DNS events are still
/// written). `ip-blocking`: the kernel's IP/CIDR blocking (drops and their alerts).
/// `tls-rules`: the TLS rules (their alerts; off also lets go the connections rules with
/// `block` cut). `dhcp-guard`: the rogue DHCP / router advertisement guard (its alerts and
/// drops). `capture-dns`, `capture-dhcp`, `capture-tls`, `capture-flow`: the kernel makes
/// no records for that worker (no events; the policies still decide, the flow table is
/// kept; each record not made is counted, `capture_off`). A switch is kept in `<state_dir>/features.json`, so a restart keeps it; rules stay loaded (and
/// `block add|remove` still work) while their feature is off, and are enforced again when
/// it is switched on. Every feature is on until switched off. `enable` and `disable` need
/// root; `list` is allowed for the control group. The switches are also in `status` and in
/// the metrics (`palisade_feature_enabled`). API: `GET /v1/features`, `POST
/// /v1/features/NAME/enable|disable`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: FeatureCommand,
}

/// The switchable features' names ([`Feature::ALL`]), as clap's possible values.
fn names() -> PossibleValuesParser {
    PossibleValuesParser::new(Feature::ALL.map(Feature::name))
}

#[derive(Debug, Subcommand)]
enum FeatureCommand {
    /// Switch a feature on (root only).
    Enable {
        /// The feature.
        #[arg(value_name = "FEATURE", value_parser = names())]
        name: String,
        #[command(flatten)]
        control: ControlArgs,
        /// Print every switch as JSON: {"features": [{"name", "enabled"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Switch a feature off (root only).
    Disable {
        /// The feature.
        #[arg(value_name = "FEATURE", value_parser = names())]
        name: String,
        #[command(flatten)]
        control: ControlArgs,
        /// Print every switch as JSON: {"features": [{"name", "enabled"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Show every feature and whether it is on.
    List {
        #[command(flatten)]
        control: ControlArgs,
        /// Print JSON: {"features": [{"name", "enabled"}]}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Features<'a> {
    features: &'a [FeatureState],
}

pub fn main(args: Args) -> ExitCode {
    let (req, control, json) = match args.command {
        FeatureCommand::Enable {
            name,
            control,
            json,
        } => (
            ControlRequest::FeatureSet {
                name,
                enabled: true,
            },
            control,
            json,
        ),
        FeatureCommand::Disable {
            name,
            control,
            json,
        } => (
            ControlRequest::FeatureSet {
                name,
                enabled: false,
            },
            control,
            json,
        ),
        FeatureCommand::List { control, json } => (ControlRequest::Features, control, json),
    };
    match super::ask(&control, json, &req) {
        Ok(ControlResponse::Features(f)) if json => super::print_json(&Features { features: &f }),
        Ok(ControlResponse::Features(f)) => {
            for s in &f {
                println!("{:<14}{}", s.name, if s.enabled { "on" } else { "off" });
            }
            ExitCode::SUCCESS
        }
        Ok(other) => super::unexpected(json, &other),
        Err(code) => code,
    }
}
