#!/usr/bin/env bash
# Installs the .deb on this machine and checks what an admin would:
#   the cvfeed user and /var/lib/cvfeed (0700), the unit (systemd-analyze
#   verify clean), the conffile, "cvfeed version" = the package's version,
#   "cvfeed check" and "cvfeed run" as the cvfeed user refuse the template
#   naming what is missing; then "dpkg --purge" removes the unit.
# Needs root and a Debian system; changes the system (CI machines are
# thrown away), and removes what it installed at the end, even on failure.
#
#   bash contrib/test-package.sh [dist/cvfeed_X_amd64.deb]   # default: build it
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
ok() { echo "test-package: ok: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' cvfeed 2>/dev/null | grep -q installed; then
  fail "a cvfeed package is already installed here; this test would replace it"
fi
user_existed=no
if getent passwd cvfeed >/dev/null; then user_existed=yes; fi
state_existed=no
if [ -e /var/lib/cvfeed ]; then state_existed=yes; fi

deb=${1:-}
if [ -z "$deb" ]; then
  bash contrib/package.sh deb
  deb=$(ls -t dist/cvfeed_*_amd64.deb | head -1)
fi
want_version=$(dpkg-deb -f "$deb" Version)

cleanup() {
  dpkg --purge cvfeed >/dev/null 2>&1 || true
  rm -f /etc/cvfeed/api_key
  rmdir /etc/cvfeed 2>/dev/null || true
  if [ "$state_existed" = no ]; then rm -rf /var/lib/cvfeed; fi
  if [ "$user_existed" = no ] && getent passwd cvfeed >/dev/null; then userdel cvfeed; fi
  if getent group cvfeed >/dev/null && [ "$user_existed" = no ]; then groupdel cvfeed 2>/dev/null || true; fi
}
trap cleanup EXIT

dpkg -i "$deb"
ok "dpkg -i $deb"

getent passwd cvfeed >/dev/null || fail "no cvfeed user after dpkg -i"
shell=$(getent passwd cvfeed | cut -d: -f7)
[ "$shell" = /usr/sbin/nologin ] || fail "cvfeed's shell is $shell, want /usr/sbin/nologin"
[ "$(id -u cvfeed)" -lt 1000 ] || fail "cvfeed is not a system user (uid $(id -u cvfeed))"
ok "system user cvfeed (uid $(id -u cvfeed), shell $shell)"

got=$(stat -c '%U:%G %a' /var/lib/cvfeed) || fail "no /var/lib/cvfeed"
[ "$got" = "cvfeed:cvfeed 700" ] || fail "/var/lib/cvfeed is $got, want cvfeed:cvfeed 700"
ok "/var/lib/cvfeed cvfeed:cvfeed 700"

unit=/lib/systemd/system/cvfeed.service
[ -f "$unit" ] || fail "no $unit"
out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
if echo "$out" | grep -i cvfeed; then fail "systemd-analyze verify $unit is not clean: $out"; fi
grep -q '^ExecStart=/usr/bin/cvfeed run -config /etc/cvfeed/config.toml$' "$unit" || fail "$unit does not run /usr/bin/cvfeed"
ok "systemd-analyze verify $unit"

dpkg-query -W -f='${Conffiles}\n' cvfeed | grep -q '^ /etc/cvfeed/config.toml ' || fail "/etc/cvfeed/config.toml is not a conffile"
for f in README.md copyright prometheus/alerts.yml prometheus/alerts_test.yml grafana/cvfeed.json; do
  [ -s "/usr/share/doc/cvfeed/$f" ] || fail "no /usr/share/doc/cvfeed/$f"
done
ok "conffile /etc/cvfeed/config.toml, docs, alerting rules and dashboard in /usr/share/doc/cvfeed"

got=$(cvfeed version)
[ "$got" = "cvfeed $want_version" ] || fail "cvfeed version printed \"$got\", want \"cvfeed $want_version\""
ok "cvfeed version: $got"

# The template as installed: check (as the service's user) refuses it and
# names what is missing; so does run, which is the unit's ExecStart.
expect_refusal() { # what, args...
  local what=$1 rc=0 out
  shift
  out=$(cd /tmp && timeout 30 runuser -u cvfeed -- /usr/bin/cvfeed "$@" -config /etc/cvfeed/config.toml 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "cvfeed $* on the template as cvfeed: exit $rc, want 2 (config error); output: $out"
  for m in "${missing[@]}"; do
    echo "$out" | grep -q -- "$m" || fail "cvfeed $* on the template does not name $m: $out"
  done
  ok "$what refuses the template (exit 2): $(echo "$out" | tr '\n' ' ')"
}
missing=("api.api_key_file" "/etc/cvfeed/api_key" "folder\[0\].source_id")
expect_refusal "check as cvfeed" check
# With the key written, the template still does not run: source_id is empty.
install -m 0640 -g cvfeed /dev/null /etc/cvfeed/api_key
echo "not-a-real-key" >/etc/cvfeed/api_key
missing=("folder\[0\].source_id")
expect_refusal "check as cvfeed, with the key" check
expect_refusal "run as cvfeed (the unit's ExecStart)" run
[ -z "$(ls -A /var/lib/cvfeed)" ] || fail "run on the template wrote to /var/lib/cvfeed: $(ls -A /var/lib/cvfeed)"
grep -q '^RestartPreventExitStatus=2$' "$unit" || fail "$unit restarts on a config error"
grep -q '^AssertPathExists=/etc/cvfeed/api_key$' "$unit" || fail "$unit does not assert /etc/cvfeed/api_key"
ok "the unit does not restart on exit 2 and asserts /etc/cvfeed/api_key"
rm -f /etc/cvfeed/api_key

dpkg --purge cvfeed
[ ! -e "$unit" ] || fail "$unit is still there after dpkg --purge"
[ ! -e /etc/cvfeed/config.toml ] || fail "/etc/cvfeed/config.toml is still there after dpkg --purge"
[ ! -e /usr/bin/cvfeed ] || fail "/usr/bin/cvfeed is still there after dpkg --purge"
ok "dpkg --purge removed the unit, the conffile and the binary"
echo "test-package: all checks passed"
