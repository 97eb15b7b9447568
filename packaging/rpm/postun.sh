# %postun of palisade ($1 = 0 on removal, 1 on upgrade).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || :
fi
if [ "$1" -ge 1 ]; then
	systemctl try-restart palisade.service >/dev/null 2>&1 || :
fi
