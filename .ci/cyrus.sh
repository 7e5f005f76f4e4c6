#!/usr/bin/env bash
# Installs what the Cyrus IMAP tests need, idempotently, and says what it did.
#
# cyrus-imapd and dovecot-imapd conflict as Debian packages (installing one
# removes the other), so Cyrus is not installed: its package is downloaded
# and extracted into a fixed root, from which the tests run a throwaway
# `master` on 127.0.0.1 (internal/cyrustest). cyrus-common (the tools and
# libraries imapd links) and sasl2-bin (saslpasswd2, for the users) are
# installed normally: they conflict with nothing.
#
#   CVFEED_CYRUS_ROOT   where to extract (default /opt/cvfeed-ci/cyrus);
#                       the tests read the same variable.
set -euo pipefail

ROOT="${CVFEED_CYRUS_ROOT:-/opt/cvfeed-ci/cyrus}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

need=()
dpkg -s cyrus-common >/dev/null 2>&1 || need+=(cyrus-common)
command -v saslpasswd2 >/dev/null 2>&1 || need+=(sasl2-bin)
updated=""
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  updated=1
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  echo "cyrus.sh: installed ${need[*]}"
else
  echo "cyrus.sh: cyrus-common and sasl2-bin already installed"
fi

# master and ctl_cyrusdb come with cyrus-common (/usr/lib/cyrus/bin); imapd
# and idled with cyrus-imapd.
if [ -x "$ROOT/usr/lib/cyrus/bin/imapd" ] && [ -x "$ROOT/usr/lib/cyrus/bin/idled" ]; then
  echo "cyrus.sh: cyrus-imapd already extracted in $ROOT"
  exit 0
fi
tmp=$(mktemp -d)
chmod 0755 "$tmp" # apt-get download runs as _apt where it can
trap 'rm -rf "$tmp"' EXIT
[ -n "$updated" ] || $SUDO apt-get update -qq
(cd "$tmp" && apt-get download -o APT::Sandbox::User=root cyrus-imapd >/dev/null)
deb=$(ls "$tmp"/cyrus-imapd_*.deb)
$SUDO mkdir -p "$ROOT"
$SUDO dpkg-deb -x "$deb" "$ROOT"
echo "cyrus.sh: extracted $(basename "$deb") into $ROOT"
