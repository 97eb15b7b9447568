# %preun of palisade ($1 = 0 on removal, 1 on upgrade). On removal stop and
# disable the service, then take the programs off the interfaces: once the
# binary is gone nothing could remove the pins. On upgrade keep it running;
# %postun restarts it and the new daemon adopts the pinned programs.
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable --now palisade.service >/dev/null 2>&1 || :
	/usr/bin/palisade cleanup || \
		echo "palisade: programs left attached; stop the daemon and run 'palisade cleanup' (or remove /sys/fs/bpf/palisade)" >&2
fi
