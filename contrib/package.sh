#!/usr/bin/env bash
# Builds cvfeed's packages into dist/ from a clone:
#   dist/cvfeed_<version>_amd64.deb, dist/cvfeed-<version>-1.x86_64.rpm,
#   dist/cvfeed_<version>_linux_amd64.tar.gz, dist/cvfeed_<version>_linux_arm64.tar.gz
#
#   bash contrib/package.sh            # all of them
#   bash contrib/package.sh deb        # only what is named: deb, rpm, tar
#
# The version is $CVFEED_VERSION, else derived from "git describe" (a tag
# v1.2.3 gives 1.2.3; commits after it 1.2.3+git4.abcdef0; no tag
# 0.0.0+git.<commit>; uncommitted changes add .dirty), else from the
# Go build info (a "go install ...@v1.2.3" module version). It is stamped
# into the binary (main.version), which "cvfeed version" prints.
# nfpm is pinned in contrib/tools/go.mod (a module of its own, so that its
# dependencies stay out of the daemon's go.mod) and run with "go tool".
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(deb rpm tar); fi
want() {
  local t
  for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}
for t in "${targets[@]}"; do
  case "$t" in deb | rpm | tar) ;; *) echo "package.sh: unknown target $t (deb, rpm, tar)" >&2; exit 2 ;; esac
done

version() {
  if [ -n "${CVFEED_VERSION:-}" ]; then
    echo "$CVFEED_VERSION"
    return
  fi
  local d dirty=""
  if git rev-parse --git-dir >/dev/null 2>&1; then
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=".dirty"; fi
    if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
      d=${d#v}
      # 1.2.3-4-gabcdef0 -> 1.2.3+git4.abcdef0 (sorts after 1.2.3 in dpkg and rpm)
      if [[ $d =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
        d="${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
      fi
      echo "$d$dirty"
      return
    fi
    echo "0.0.0+git.$(git rev-parse --short=12 HEAD)$dirty"
    return
  fi
  echo "package.sh: not a git clone and CVFEED_VERSION is not set" >&2
  exit 2
}
VERSION=$(version)
if ! [[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
  echo "package.sh: version \"$VERSION\" is not a package version (digits first, then [A-Za-z0-9.+~])" >&2
  exit 2
fi
echo "package.sh: cvfeed $VERSION"

rm -rf dist/build
mkdir -p dist/build/doc

build() { # GOARCH
  echo "package.sh: go build linux/$1"
  CGO_ENABLED=0 GOOS=linux GOARCH="$1" go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$VERSION" -o "dist/build/$1/cvfeed" ./cmd/cvfeed
}
arches=(amd64)
if want tar; then arches+=(arm64); fi
for a in "${arches[@]}"; do build "$a"; done

# The packaged unit runs the packaged binary.
sed 's|/usr/local/bin/cvfeed|/usr/bin/cvfeed|g' contrib/systemd/cvfeed.service >dist/build/cvfeed.service
if grep -q '^[^#]*/usr/local/' dist/build/cvfeed.service; then
  echo "package.sh: the unit still names /usr/local" >&2
  exit 1
fi
# The licence, when the tree has one; Debian wants a copyright file.
lic=""
for f in LICENSE LICENSE.md LICENCE COPYING; do
  if [ -f "$f" ]; then lic=$f; cp "$f" dist/build/doc/; fi
done
{
  echo "cvfeed $VERSION, https://github.com/cvfeed/cvfeed"
  if [ -n "$lic" ]; then echo "Licence: see $lic beside this file."; else echo "The source tree holds no licence file."; fi
} >dist/build/doc/copyright

if want deb || want rpm; then
  nfpm=$(go -C contrib/tools tool -n nfpm)
  mkdir -p dist/build/pkg
  cp dist/build/amd64/cvfeed dist/build/pkg/cvfeed
  for p in deb rpm; do
    want "$p" || continue
    CVFEED_VERSION=$VERSION CVFEED_ARCH=amd64 "$nfpm" package -f contrib/nfpm.yaml -p "$p" -t dist/
  done
fi

if want tar; then
  for a in "${arches[@]}"; do
    name="cvfeed_${VERSION}_linux_$a"
    stage="dist/build/tar/$name"
    mkdir -p "$stage/systemd" "$stage/prometheus" "$stage/grafana"
    cp "dist/build/$a/cvfeed" README.md "$stage/"
    cp dist/build/doc/* "$stage/"
    cp contrib/systemd/cvfeed.service contrib/systemd/README.md "$stage/systemd/"
    cp contrib/prometheus/* "$stage/prometheus/"
    cp contrib/grafana/* "$stage/grafana/"
    tar -C dist/build/tar --owner=0 --group=0 --sort=name -czf "dist/$name.tar.gz" "$name"
  done
fi
rm -rf dist/build
ls -l dist/
