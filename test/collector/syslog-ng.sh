#!/usr/bin/env bash
# A real downstream syslog collector (syslog-ng) on loopback for the
# syslog sink's integration tests.
#
#   test/collector/syslog-ng.sh start   write the config, start syslog-ng, wait for its ports
#   test/collector/syslog-ng.sh env     print export lines for the tests (eval "$(... env)")
#   test/collector/syslog-ng.sh stop    stop it
#
# Sources (all 127.0.0.1, ports picked free at start, overridable with
# WHARF_COLLECTOR_PORT_TCP / _UDP / _LF / _BSD / _TLS / _MTLS):
#   WHARF_COLLECTOR_TCP     syslog() driver, TCP, RFC6587 octet counting  -> $OUT/tcp.log
#   WHARF_COLLECTOR_UDP     syslog() driver, UDP, one message per datagram -> $OUT/udp.log
#   WHARF_COLLECTOR_TCP_LF  network() driver, TCP, LF framing              -> $OUT/lf.log
#   WHARF_COLLECTOR_TCP_BSD network() driver, TCP, LF framing, RFC3164 parsing
#                           (an old BSD collector); each line is what syslog-ng
#                           parsed: HOST|PROGRAM|PID|FACILITY.LEVEL|MSG     -> $OUT/bsd.log
#   WHARF_COLLECTOR_TLS     syslog() driver, TLS (RFC 5425, octet counting),
#                           client certificate optional (peer-verify(optional-untrusted)) -> $OUT/tls.log
#   WHARF_COLLECTOR_MTLS    the same, client certificate required and verified
#                           against the CA (peer-verify(required-trusted))   -> $OUT/mtls.log
# TLS material is made with openssl at start under var/collector/tls/: a CA
# (WHARF_COLLECTOR_CA, ca.pem), the collector's certificate for 127.0.0.1
# and localhost, and a client certificate with its key for wharf
# (WHARF_COLLECTOR_CLIENT_CERT, WHARF_COLLECTOR_CLIENT_KEY).
# Each output line is ${RAWMSG}: the message exactly as received, without
# framing. WHARF_COLLECTOR_OUT is the directory holding the three files;
# they are appended to across runs, so tests tag their messages with a
# unique id and pick their own lines.
#
# Everything lives under var/collector/ (config, pid, control socket,
# persist file, log); nothing touches the system's syslog.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD/var/collector"
out="$root/out"
conf="$root/syslog-ng.conf"
pidfile="$root/syslog-ng.pid"
ctl="$root/syslog-ng.ctl"
persist="$root/syslog-ng.persist"
log="$root/syslog-ng.log"
envfile="$root/env"
tlsdir="$root/tls"

running() {
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

free_udp_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_tcp() {
  local port=$1
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "syslog-ng.sh: port $port did not open within 10s; see $log" >&2
  tail -n 20 "$log" >&2 || true
  return 1
}

# make_tls writes a CA, a server certificate and a client certificate into
# $tlsdir (once; they are valid for ten years and reused across runs).
make_tls() {
  if [[ -s $tlsdir/client.pem && -s $tlsdir/server.pem ]]; then return 0; fi
  if ! command -v openssl >/dev/null; then
    echo "syslog-ng.sh: openssl is not installed (apt-get install openssl)" >&2
    return 1
  fi
  mkdir -p "$tlsdir"
  (
    cd "$tlsdir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=wharf test collector CA" -keyout ca.key -out ca.pem 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    for name in server client; do
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=wharf test $name" -keyout $name.key -out $name.csr 2>/dev/null
      openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile $name.ext -out $name.pem 2>/dev/null
    done
    chmod 600 ./*.key
  )
}

start() {
  if running; then
    echo "syslog-ng.sh: already running (pid $(cat "$pidfile"))" >&2
    return 0
  fi
  if ! command -v syslog-ng >/dev/null; then
    echo "syslog-ng.sh: syslog-ng is not installed (apt-get install syslog-ng-core)" >&2
    return 1
  fi
  mkdir -p "$out"
  make_tls
  local version tcp udp lf bsd tls mtls
  version=$(syslog-ng --version | sed -n 's/^Config version: *//p')
  tcp=${WHARF_COLLECTOR_PORT_TCP:-$(free_port)}
  udp=${WHARF_COLLECTOR_PORT_UDP:-$(free_udp_port)}
  lf=${WHARF_COLLECTOR_PORT_LF:-$(free_port)}
  bsd=${WHARF_COLLECTOR_PORT_BSD:-$(free_port)}
  tls=${WHARF_COLLECTOR_PORT_TLS:-$(free_port)}
  mtls=${WHARF_COLLECTOR_PORT_MTLS:-$(free_port)}
  cat >"$conf" <<EOF
@version: ${version}
# Written by test/collector/syslog-ng.sh; no system() source on purpose.
options {
  keep-hostname(yes); chain-hostnames(no); use-dns(no); use-fqdn(no); dns-cache(no);
  stats-freq(0); mark-freq(0); log-msg-size(131072);
  create-dirs(yes); flush-lines(100); time-reopen(1);
};
template t_raw { template("\${RAWMSG}\n"); };
source s_tcp { syslog(ip("127.0.0.1") port(${tcp}) transport("tcp") max-connections(200) log-iw-size(200000) flags(store-raw-message)); };
source s_udp { syslog(ip("127.0.0.1") port(${udp}) transport("udp") so-rcvbuf(8388608) flags(store-raw-message)); };
source s_lf  { network(ip("127.0.0.1") port(${lf}) transport("tcp") max-connections(200) log-iw-size(200000) flags(syslog-protocol, store-raw-message)); };
source s_bsd { network(ip("127.0.0.1") port(${bsd}) transport("tcp") max-connections(200) log-iw-size(200000)); };
source s_tls { syslog(ip("127.0.0.1") port(${tls}) transport("tls") max-connections(200) log-iw-size(200000) flags(store-raw-message)
  tls(key-file("${tlsdir}/server.key") cert-file("${tlsdir}/server.pem") peer-verify(optional-untrusted))); };
source s_mtls { syslog(ip("127.0.0.1") port(${mtls}) transport("tls") max-connections(200) log-iw-size(200000) flags(store-raw-message)
  tls(key-file("${tlsdir}/server.key") cert-file("${tlsdir}/server.pem") ca-file("${tlsdir}/ca.pem") peer-verify(required-trusted))); };
destination d_tcp { file("${out}/tcp.log" template(t_raw)); };
destination d_udp { file("${out}/udp.log" template(t_raw)); };
destination d_lf  { file("${out}/lf.log"  template(t_raw)); };
destination d_bsd { file("${out}/bsd.log" template("\${HOST}|\${PROGRAM}|\${PID}|\${FACILITY}.\${LEVEL}|\${MSG}\n")); };
destination d_tls { file("${out}/tls.log" template(t_raw)); };
destination d_mtls { file("${out}/mtls.log" template(t_raw)); };
# flow-control: a slow file applies TCP backpressure instead of dropping.
log { source(s_tcp); destination(d_tcp); flags(flow-control); };
log { source(s_udp); destination(d_udp); };
log { source(s_lf);  destination(d_lf);  flags(flow-control); };
log { source(s_bsd); destination(d_bsd); flags(flow-control); };
log { source(s_tls); destination(d_tls); flags(flow-control); };
log { source(s_mtls); destination(d_mtls); flags(flow-control); };
EOF
  syslog-ng --syntax-only -f "$conf"
  nohup syslog-ng -F -f "$conf" -p "$pidfile" -R "$persist" -c "$ctl" >"$log" 2>&1 &
  for _ in $(seq 50); do [[ -s $pidfile ]] && break; sleep 0.1; done
  wait_tcp "$tcp"
  wait_tcp "$lf"
  wait_tcp "$bsd"
  wait_tcp "$tls"
  wait_tcp "$mtls"
  cat >"$envfile" <<EOF
export WHARF_COLLECTOR_TCP=127.0.0.1:${tcp}
export WHARF_COLLECTOR_UDP=127.0.0.1:${udp}
export WHARF_COLLECTOR_TCP_LF=127.0.0.1:${lf}
export WHARF_COLLECTOR_TCP_BSD=127.0.0.1:${bsd}
export WHARF_COLLECTOR_TLS=127.0.0.1:${tls}
export WHARF_COLLECTOR_MTLS=127.0.0.1:${mtls}
export WHARF_COLLECTOR_CA=${tlsdir}/ca.pem
export WHARF_COLLECTOR_CLIENT_CERT=${tlsdir}/client.pem
export WHARF_COLLECTOR_CLIENT_KEY=${tlsdir}/client.key
export WHARF_COLLECTOR_OUT=${out}
EOF
  echo "syslog-ng.sh: syslog-ng $(syslog-ng --version | head -1 | awk '{print $3}' | tr -d '()') running (pid $(cat "$pidfile")): tcp $tcp, udp $udp, tcp-lf $lf, tcp-bsd $bsd, tls $tls, mtls $mtls, output in $out" >&2
}

stop() {
  if running; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  fi
  rm -f "$pidfile" "$envfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    if ! running || [[ ! -f $envfile ]]; then
      echo "syslog-ng.sh: not running; run: $0 start" >&2
      exit 1
    fi
    cat "$envfile"
    ;;
  *)
    echo "usage: $0 start|env|stop" >&2
    exit 2
    ;;
esac
