# %post of palisade (cargo-generate-rpm runs it with /bin/sh; $1 = number of
# palisade packages installed after this transaction step: 1 on install, 2
# on upgrade). What the Fedora %sysusers/%tmpfiles/%systemd_post macros do.
systemd-sysusers /usr/lib/sysusers.d/palisade.conf || :
systemd-tmpfiles --create /usr/lib/tmpfiles.d/palisade.conf || :
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || :
fi
if [ "$1" -eq 1 ]; then
	# First installation: enable or not as the distribution's preset says.
	systemctl --no-reload preset palisade.service >/dev/null 2>&1 || :
fi
