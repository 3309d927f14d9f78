#!/usr/bin/env bash
# Installs the relays wharf is compared with, from Debian, on demand.
#
#   bash bench/peers/install.sh            # everything missing
#
# syslog-ng, HAProxy, socat, nginx (with libnginx-mod-stream for the TCP
# proxy scenario), wrk (the HTTP load client) and h2load (nghttp2-client,
# the HTTP/2 one) are ordinary packages;
# nginx is never started as a service (the harness runs it from its own
# config), so service starts are refused while it installs. rsyslog conflicts with
# syslog-ng as a package (both provide system-log-daemon), so it is
# downloaded and unpacked with dpkg -x into var/peers/rsyslog and run from
# there (test/rsyslog/rsyslog.sh fetch does it, for the tests too). Its
# shared libraries do not conflict and are installed normally. Idempotent: installed parts are
# skipped. Needs root and a reachable Debian mirror.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/var/peers/rsyslog"

need=()
command -v syslog-ng >/dev/null || need+=(syslog-ng-core)
dpkg -s syslog-ng-mod-rdkafka >/dev/null 2>&1 || need+=(syslog-ng-mod-rdkafka)
command -v haproxy >/dev/null || need+=(haproxy)
command -v socat >/dev/null || need+=(socat)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v nginx >/dev/null || need+=(nginx)
[[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || need+=(libnginx-mod-stream)
# rsyslog's and omkafka's libraries (no conflict with syslog-ng).
for p in libestr0 libfastjson4 liblognorm5 librdkafka1 libsystemd0 libuuid1 zlib1g; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done

export DEBIAN_FRONTEND=noninteractive
if ((${#need[@]})); then
	echo "bench/peers: installing ${need[*]}" >&2
	apt-get update -qq || true
	# Debian's nginx package starts the service on install; the bench does
	# not want an nginx on port 80. A policy-rc.d that refuses starts (the
	# Debian way) is put in place only if there is none.
	policy=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
	fi
	rc=0
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
	if [[ -n "$policy" ]]; then rm -f "$policy"; fi
	if ((rc)); then exit "$rc"; fi
fi

# rsyslog, rsyslog-relp and rsyslog-kafka, unpacked (shared with the tests).
bash "$root/test/rsyslog/rsyslog.sh" fetch
"$dest/usr/sbin/rsyslogd" -v | sed -n 1p >&2
haproxy -v | sed -n 1p >&2
syslog-ng --version | sed -n 1p >&2
socat -V 2>/dev/null | sed -n "/socat version/p" >&2
nginx -v 2>&1 | sed -n 1p >&2
wrk -v 2>&1 | sed -n 1p >&2 || true
