//! `palisade cleanup`.

use std::{path::PathBuf, process::ExitCode};

use super::ControlArgs;
use crate::{control::client, ebpf::pin};

/// Detach Palisade's programs and remove its pins (every ABI version below
/// the pin root). Refuses while a daemon answers on the control socket.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bpffs pin root.
    #[arg(long, value_name = "PATH", default_value = crate::paths::PIN_ROOT)]
    pin_root: PathBuf,
    #[command(flatten)]
    control: ControlArgs,
}

pub fn main(args: Args) -> ExitCode {
    if client::is_live(&args.control.control_socket) {
        eprintln!(
            "palisade: a daemon is running on {}; stop it first (or use `palisade run --detach-on-exit`)",
            args.control.control_socket.display()
        );
        return ExitCode::FAILURE;
    }
    match pin::remove_all(&args.pin_root) {
        Ok(removed) if removed.is_empty() => {
            println!("nothing pinned below {}", args.pin_root.display());
            ExitCode::SUCCESS
        }
        Ok(removed) => {
            for r in removed {
                println!("removed {}", r.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: {}", crate::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
