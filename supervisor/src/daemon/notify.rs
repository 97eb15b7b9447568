//! systemd's service notification protocol (`sd_notify(3)`), for `Type=notify` with
//! `WatchdogSec=`: `READY=1` once the programs are attached and every worker is running,
//! `WATCHDOG=1` from the event loop (so a wedged loop stops the pings and systemd restarts
//! the service), `STATUS=` lines for `systemctl status`, `STOPPING=1` on shutdown.
//!
//! The protocol is one datagram per message on the AF_UNIX socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`); no library is needed for it.
//! Without `$NOTIFY_SOCKET` (not under systemd, or `Type=exec`) every call is a no-op.
//! The variables are removed from the environment at start, so workers never inherit them.

use std::{
    os::{linux::net::SocketAddrExt, unix::net::UnixDatagram},
    time::{Duration, Instant},
};

/// The notification socket and the watchdog period, from the environment.
#[derive(Debug, Default)]
pub(super) struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half of `$WATCHDOG_USEC` (systemd's advice: ping at least twice per period).
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    ready: bool,
}

impl Notifier {
    /// Reads and removes `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. A watchdog
    /// meant for another process (`$WATCHDOG_PID` not ours) is ignored.
    pub(super) fn from_env() -> Self {
        let path = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        // SAFETY (of the environment change): the supervisor is single-threaded here, at
        // start, before any worker is forked.
        unsafe {
            std::env::remove_var("NOTIFY_SOCKET");
            std::env::remove_var("WATCHDOG_USEC");
            std::env::remove_var("WATCHDOG_PID");
        }
        let Some(path) = path else {
            return Self::default();
        };
        let addr = {
            use std::os::unix::ffi::OsStrExt;
            let bytes = path.as_bytes();
            match bytes.split_first() {
                Some((b'@', name)) => std::os::unix::net::SocketAddr::from_abstract_name(name),
                _ => std::os::unix::net::SocketAddr::from_pathname(&path),
            }
        };
        let socket = match (UnixDatagram::unbound(), addr) {
            (Ok(s), Ok(a)) => Some((s, a)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, socket = ?path, "systemd notification socket unusable: READY and watchdog pings will not be sent");
                None
            }
        };
        let ours = pid
            .as_deref()
            .is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
        let ping_every = usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(|u| Duration::from_micros(u / 2));
        if let Some(every) = ping_every {
            tracing::info!(
                ping_every_ms = every.as_millis() as u64,
                "systemd watchdog on: the event loop pings it"
            );
        }
        Self {
            socket,
            ping_every,
            last_ping: None,
            ready: false,
        }
    }

    /// Whether `READY=1` was sent.
    pub(super) fn is_ready(&self) -> bool {
        self.ready || self.socket.is_none()
    }

    /// Sends one message (newline-separated `KEY=value` assignments). Failures are logged,
    /// never fatal: the sensor runs on without systemd's bookkeeping.
    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.socket
            && let Err(e) = socket.send_to_addr(message.as_bytes(), addr)
        {
            tracing::warn!(error = %e, message, "systemd notification not sent");
        }
    }

    /// `READY=1` with a status line, once.
    pub(super) fn ready(&mut self, status: &str) {
        if self.ready || self.socket.is_none() {
            return;
        }
        self.ready = true;
        self.send(&format!("READY=1\nSTATUS={status}"));
        tracing::info!(status, "told systemd: ready");
    }

    /// `WATCHDOG=1` when half the period has passed since the last ping. Called every turn
    /// of the event loop (at least every 100 ms).
    pub(super) fn tick(&mut self, now: Instant) {
        let Some(every) = self.ping_every else {
            return;
        };
        if self
            .last_ping
            .is_none_or(|t| now.duration_since(t) >= every)
        {
            self.last_ping = Some(now);
            self.send("WATCHDOG=1");
        }
    }

    /// `STOPPING=1`.
    pub(super) fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }
}
