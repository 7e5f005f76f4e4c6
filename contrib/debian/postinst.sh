#!/bin/sh
# cvfeed postinst: the system user and /var/lib/cvfeed (0700), then the
# unit known to systemd. The service is neither enabled nor started: the
# config is a template until the admin fills it in.
set -e

# dpkg: "configure" [old version]; rpm: 1 (install) or 2 (upgrade).
case "$1" in
abort-*) exit 0 ;;
esac
{
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers cvfeed.conf
	elif ! getent passwd cvfeed >/dev/null; then
		useradd --system --user-group --home-dir /var/lib/cvfeed --no-create-home \
			--shell /usr/sbin/nologin --comment "cvfeed daemon" cvfeed
	fi
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create cvfeed.conf
	else
		install -d -m 0700 -o cvfeed -g cvfeed /var/lib/cvfeed
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	if [ -z "$2" ] && [ "$1" != 2 ]; then
		cat <<'MSG'
cvfeed: fill in /etc/cvfeed/config.toml and write the API key into
/etc/cvfeed/api_key (install -m 0640 -g cvfeed /dev/null /etc/cvfeed/api_key),
then: sudo -u cvfeed cvfeed check -config /etc/cvfeed/config.toml
      systemctl enable --now cvfeed
MSG
	fi
}
exit 0
