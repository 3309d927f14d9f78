#!/usr/bin/env bash
# Runs the proxy's interop tests against a real HAProxy (and curl): HAProxy
# sends PROXY v1/v2 into wharf binds with accept_proxy, wharf sends PROXY
# v1/v2 (and its health checks) to HAProxy binds with accept-proxy. Each
# test writes its own haproxy.cfg on free loopback ports and runs
# `haproxy -db` for its duration, so nothing needs starting here.
# WHARF_INTEGRATION=1 makes a missing haproxy or curl a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v haproxy >/dev/null || { echo "test/proxy: haproxy is not installed (bash test/deps.sh installs it)" >&2; exit 1; }
WHARF_INTEGRATION=1 go test -count=1 -run 'HAProxy|Curl' "$@" ./proxy/...
