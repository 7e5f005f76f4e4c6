#!/bin/sh
# cvfeed postrm: dpkg has removed the unit (and, on purge, the conffile);
# systemd forgets it. The state in /var/lib/cvfeed and the cvfeed user stay
# even on purge: the state records which CVs were sent, and files on the
# shares may belong to the user. Remove them by hand if wanted:
#   rm -r /var/lib/cvfeed && userdel cvfeed
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ] && [ -d /var/lib/cvfeed ]; then
	echo "cvfeed: /var/lib/cvfeed (the state: which CVs were sent) and the cvfeed user are kept"
fi
exit 0
