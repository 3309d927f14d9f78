#!/usr/bin/env bash
# rsyslog 8 with imrelp/omrelp for the RELP interoperability tests.
#
#   bash test/rsyslog/rsyslog.sh fetch   # unpack rsyslog + rsyslog-relp (idempotent)
#   bash test/rsyslog/rsyslog.sh env     # print WHARF_RSYSLOGD and WHARF_RSYSLOG_MODULES
#
# rsyslog conflicts with syslog-ng-core as a package (both provide
# system-log-daemon), so its .debs are downloaded and unpacked with dpkg -x
# into var/peers/rsyslog and run from there, as bench/peers/install.sh does
# (which calls this script). The libraries they link (librelp0 among them)
# do not conflict and are installed normally. The tests start their own
# rsyslogd per case, each with its own config and loopback ports.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/var/peers/rsyslog"
mods="$dest/usr/lib/x86_64-linux-gnu/rsyslog"

fetch() {
	local need=()
	for p in librelp0 libestr0 libfastjson4 liblognorm5 librdkafka1 libsystemd0 libuuid1 zlib1g libgnutls30; do
		dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
	done
	if ((${#need[@]})); then
		echo "test/rsyslog: installing ${need[*]}" >&2
		local SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
		$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || true
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
	if [[ -x "$dest/usr/sbin/rsyslogd" && -e "$mods/imrelp.so" && -e "$mods/omrelp.so" && -e "$mods/omkafka.so" && -e "$mods/lmnsd_gtls.so" ]]; then
		return
	fi
	echo "test/rsyslog: unpacking rsyslog, rsyslog-relp, rsyslog-kafka and rsyslog-gnutls into $dest" >&2
	local tmp
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' RETURN
	(cd "$tmp" && (apt-get download rsyslog rsyslog-relp rsyslog-kafka rsyslog-gnutls >/dev/null 2>&1 ||
		{ apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get download rsyslog rsyslog-relp rsyslog-kafka rsyslog-gnutls >/dev/null; }))
	mkdir -p "$dest"
	for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dest"; done
	"$dest/usr/sbin/rsyslogd" -v | sed -n 1p >&2
}

case "${1:-}" in
fetch) fetch ;;
env)
	echo "export WHARF_RSYSLOGD=$dest/usr/sbin/rsyslogd"
	echo "export WHARF_RSYSLOG_MODULES=$mods"
	;;
*)
	echo "usage: $0 fetch|env" >&2
	exit 2
	;;
esac
