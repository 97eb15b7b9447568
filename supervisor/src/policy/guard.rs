//! The DHCP guard's kernel side: `[dhcp] allowed_servers` into `pal_guard_allow` and the
//! mode (off, alert, drop) into `pal_guard_config`. The kernel flags (and, in drop mode,
//! drops) DHCP server messages and router advertisements from other senders; the DHCP worker
//! turns the flags into alerts (it never sees the list).

use palisade_abi::{GUARD_OFF, MAP_GUARD_ALLOW, MAP_GUARD_CONFIG};
use palisade_ebpf::guard;

use crate::{
    config::DhcpConfig,
    ebpf::maps::{KernelError, Maps, on as err},
};

/// Writes the allow-list and the mode (off while the `dhcp-guard` feature is switched off:
/// `enabled` false). Turning the guard on (or changing the list) writes the list first and
/// turning it off writes the mode first, so that no allowed server is ever checked against
/// a partial list.
pub fn apply(maps: &dyn Maps, cfg: &DhcpConfig, enabled: bool) -> Result<(), KernelError> {
    let keys: Vec<_> = cfg.allowed_servers.iter().map(|s| s.key()).collect();
    let mode = if enabled { cfg.guard_mode() } else { GUARD_OFF };
    let allow = maps.fd(MAP_GUARD_ALLOW)?;
    let config = maps.fd(MAP_GUARD_CONFIG)?;
    if mode == GUARD_OFF {
        guard::set_mode(config, mode).map_err(err(MAP_GUARD_CONFIG))?;
        guard::set_allowed(allow, &keys).map_err(err(MAP_GUARD_ALLOW))?;
    } else {
        guard::set_allowed(allow, &keys).map_err(err(MAP_GUARD_ALLOW))?;
        guard::set_mode(config, mode).map_err(err(MAP_GUARD_CONFIG))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use palisade_abi::{GUARD_ALERT, GUARD_DROP, GuardKey};

    use super::*;
    use crate::{config::AllowedServer, ebpf::maps::fake::FakeMaps};

    fn config(guard: bool, servers: &[&str]) -> DhcpConfig {
        DhcpConfig {
            transaction_timeout_s: 30,
            guard,
            allowed_servers: servers
                .iter()
                .map(|s| AllowedServer::parse(s).expect("entry"))
                .collect(),
        }
    }

    #[test]
    fn list_and_mode_reach_the_maps() {
        let maps = FakeMaps::new();
        let fd = |name| maps.fd(name).expect("map");
        apply(
            &maps,
            &config(false, &["00:11:32:aa:bb:cc", "198.18.0.2"]),
            true,
        )
        .expect("apply");
        assert_eq!(
            guard::mode(fd(MAP_GUARD_CONFIG)).expect("mode"),
            GUARD_ALERT
        );
        let mut keys = guard::allowed(fd(MAP_GUARD_ALLOW)).expect("list");
        keys.sort_by_key(GuardKey::to_bytes);
        let mut want = vec![
            GuardKey::mac([0, 0x11, 0x32, 0xaa, 0xbb, 0xcc]),
            GuardKey::ip("198.18.0.2".parse().expect("ip")),
        ];
        want.sort_by_key(GuardKey::to_bytes);
        assert_eq!(keys, want);

        // A reload: another list in drop mode; the stale entry goes.
        apply(&maps, &config(true, &["fe80::1"]), true).expect("apply");
        assert_eq!(guard::mode(fd(MAP_GUARD_CONFIG)).expect("mode"), GUARD_DROP);
        assert_eq!(
            guard::allowed(fd(MAP_GUARD_ALLOW)).expect("list"),
            vec![GuardKey::ip("fe80::1".parse().expect("ip"))]
        );

        // Switched off (`dhcp-guard`): off, the list kept for when it comes back.
        apply(&maps, &config(true, &["fe80::1"]), false).expect("apply");
        assert_eq!(guard::mode(fd(MAP_GUARD_CONFIG)).expect("mode"), GUARD_OFF);
        assert_eq!(guard::allowed(fd(MAP_GUARD_ALLOW)).expect("list").len(), 1);

        // No list: off and empty.
        apply(&maps, &config(false, &[]), true).expect("apply");
        assert_eq!(guard::mode(fd(MAP_GUARD_CONFIG)).expect("mode"), GUARD_OFF);
        assert!(
            guard::allowed(fd(MAP_GUARD_ALLOW))
                .expect("list")
                .is_empty()
        );
    }
}
