//! `[control]`: who may use the control socket, and the API over TCP.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};
use crate::paths;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    group: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    tcp_changes: Option<bool>,
    metrics_without_token: Option<bool>,
}

/// The API over TCP (`[control] listen`), beside the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlTcp {
    /// Address and port to listen on (loopback in the shipped example).
    pub listen: SocketAddr,
    /// The bearer token's file: owned by root, no access for group or others.
    pub token_file: PathBuf,
    /// Whether a client with the token may change the daemon (root's rights on the socket);
    /// otherwise it has the control group's: reads only.
    pub changes: bool,
    /// Whether `GET /metrics` is served over TCP without the token.
    pub metrics_without_token: bool,
}

/// The default token file.
pub const TOKEN_FILE: &str = "/etc/palisade/api-token";

/// Validates `[control]`: (group, TCP API).
pub(super) fn parse(
    c: &Checker<'_>,
    raw: RawControl,
) -> Result<(String, Option<ControlTcp>), ConfigError> {
    let group = c.name("control.group", raw.group, paths::CONTROL_GROUP.to_owned())?;
    let token_span = raw.token_file.as_ref().map(Spanned::span);
    let token_file = c.abs_path("control.token_file", raw.token_file, TOKEN_FILE)?;
    let Some(listen) = raw.listen else {
        if let Some(span) = token_span {
            return c.invalid(
                "control.token_file",
                span,
                "set without control.listen: the API listens on no TCP address",
            );
        }
        return Ok((group, None));
    };
    let Ok(addr) = listen.get_ref().parse::<SocketAddr>() else {
        return c.invalid(
            "control.listen",
            listen.span(),
            format!(
                "{:?} is not an address and port (\"127.0.0.1:9611\", \"[::1]:9611\")",
                listen.get_ref()
            ),
        );
    };
    if addr.port() == 0 {
        return c.invalid("control.listen", listen.span(), "port 0 is not a port");
    }
    Ok((
        group,
        Some(ControlTcp {
            listen: addr,
            token_file,
            changes: raw.tcp_changes.unwrap_or(false),
            metrics_without_token: raw.metrics_without_token.unwrap_or(false),
        }),
    ))
}
