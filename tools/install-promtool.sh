#!/bin/sh
# Puts promtool at the path given ($1), for `make test`'s alert-rule tests. It comes from Debian's
# `prometheus` package, unpacked rather than installed: only the promtool binary is used, and no
# Prometheus server is installed or started. A promtool already on PATH is used as it is.
set -eu
dest="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if found=$(command -v promtool); then
    ln -sf "$found" "$dest"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get -qq download prometheus 2>/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "promtool: not on PATH, and fetching Debian's prometheus package needs the package lists," \
             "which only root can update (apt-get update); the alert-rule tests will be skipped" >&2
        exit 0
    fi
    apt-get -qq update
    apt-get -qq download prometheus 2>/dev/null
fi
dpkg-deb -x prometheus_*.deb unpacked
install -m 0755 unpacked/usr/bin/promtool "$dest"
"$dest" --version | head -n 1
