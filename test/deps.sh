#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: Debian packages
# (only those missing, so a second run is quick), Go modules, and Apache
# Kafka's jars from Maven Central (cached in ~/.m2).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(kcat syslog-ng-core bsdutils socat curl systemd logrotate chromium zsh haproxy openssl wrk nghttp2-client groff-base make mount util-linux e2fsprogs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test/deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

go mod download
bash test/kafka/kafka.sh fetch
bash test/rsyslog/rsyslog.sh fetch  # rsyslog 8 + imrelp/omrelp, unpacked (it conflicts with syslog-ng-core)
