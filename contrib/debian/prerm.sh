#!/bin/sh
# cvfeed prerm: stop and disable the service before its files go (dpkg:
# "remove"; rpm: 0). An upgrade leaves it running.
set -e
if { [ "$1" = remove ] || [ "$1" = 0 ]; } && [ -d /run/systemd/system ]; then
	systemctl stop cvfeed.service || true
	systemctl disable cvfeed.service || true
fi
exit 0
