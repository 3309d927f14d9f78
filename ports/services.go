package ports

import "strconv"

// Use is what a listener serves, as far as port conventions care. A
// service lists the uses that fit its port; any other use there is a
// "port-mismatch" warning.
type Use string

// The uses of wharf listeners.
const (
	// UseSyslog is plaintext syslog (mode "syslog", udp:// or tcp://).
	UseSyslog Use = "syslog"
	// UseSyslogTLS is syslog over TLS (RFC 5425, mode "syslog", tls://).
	UseSyslogTLS Use = "syslog-tls"
	// UseHTTP is plain HTTP: an http frontend without TLS, or the admin
	// listener.
	UseHTTP Use = "http"
	// UseHTTPS is an http frontend terminating TLS.
	UseHTTPS Use = "https"
	// UseTCPProxy is a generic TCP forwarder (mode "tcp"). It carries
	// whatever its clients speak, so it fits every port and never gets a
	// port-mismatch warning: a tcp frontend on 22 presumably forwards SSH.
	UseTCPProxy Use = "tcp-proxy"
)

// Service is what a port number usually carries on one transport.
type Service struct {
	// Port and Proto ("udp" or "tcp") identify the service.
	Port  int
	Proto string
	// Name is the short name shown in the SERVICE column.
	Name string
	// Fits lists the wharf uses that belong on this port. Empty means no
	// wharf listener except a generic TCP proxy belongs there.
	Fits []Use
}

// services is the table of well-known ports. Choices, where a port is
// ambiguous:
//   - 514/udp is syslog (RFC 5426). 514/tcp is "shell" (rsh) in the IANA
//     registry, but plaintext syslog over TCP (RFC 6587) is what most
//     senders use there, so it is "shell/syslog" and syslog fits.
//   - 601/tcp is syslog-conn (RFC 3195); in practice plain RFC 6587
//     syslog, so syslog fits.
//   - 6514/tcp is syslog over TLS (RFC 5425): plaintext syslog there is a
//     mismatch, since senders will start a TLS handshake. 6514/udp is
//     syslog over DTLS (RFC 6012), which wharf does not speak.
//   - 80, 8080 fit plain HTTP (http frontends and the admin listener);
//     443, 8443 fit HTTPS. 443/udp is HTTP/3 (QUIC).
//   - Everything else (SSH, SMTP, DNS, databases, Kafka...) fits only a
//     generic TCP proxy, which fits everywhere (see UseTCPProxy).
var services = []Service{
	{20, "tcp", "ftp-data", nil},
	{21, "tcp", "ftp", nil},
	{22, "tcp", "ssh", nil},
	{23, "tcp", "telnet", nil},
	{25, "tcp", "smtp", nil},
	{53, "tcp", "dns", nil},
	{53, "udp", "dns", nil},
	{67, "udp", "dhcp", nil},
	{69, "udp", "tftp", nil},
	{80, "tcp", "http", []Use{UseHTTP}},
	{110, "tcp", "pop3", nil},
	{123, "udp", "ntp", nil},
	{143, "tcp", "imap", nil},
	{161, "udp", "snmp", nil},
	{162, "udp", "snmp-trap", nil},
	{389, "tcp", "ldap", nil},
	{443, "tcp", "https", []Use{UseHTTPS}},
	{443, "udp", "https (quic)", nil},
	{465, "tcp", "smtps", nil},
	{514, "tcp", "shell/syslog", []Use{UseSyslog}},
	{514, "udp", "syslog", []Use{UseSyslog}},
	{587, "tcp", "smtp (submission)", nil},
	{601, "tcp", "syslog-conn", []Use{UseSyslog}},
	{636, "tcp", "ldaps", nil},
	{993, "tcp", "imaps", nil},
	{995, "tcp", "pop3s", nil},
	{2049, "tcp", "nfs", nil},
	{3306, "tcp", "mysql", nil},
	{3389, "tcp", "rdp", nil},
	{3389, "udp", "rdp", nil},
	{5432, "tcp", "postgresql", nil},
	{5672, "tcp", "amqp", nil},
	{6379, "tcp", "redis", nil},
	{6514, "tcp", "syslog-tls", []Use{UseSyslogTLS}},
	{6514, "udp", "syslog-dtls", nil},
	{8080, "tcp", "http-alt", []Use{UseHTTP}},
	{8443, "tcp", "https-alt", []Use{UseHTTPS}},
	{9092, "tcp", "kafka", nil},
	{11211, "tcp", "memcached", nil},
	{27017, "tcp", "mongodb", nil},
}

// byKey indexes services by "port/proto".
var byKey = func() map[string]*Service {
	m := make(map[string]*Service, len(services))
	for i := range services {
		s := &services[i]
		m[key(s.Port, s.Proto)] = s
	}
	return m
}()

func key(port int, proto string) string { return strconv.Itoa(port) + "/" + proto }

// Lookup returns the service port/proto usually carries, or nil when the
// table does not know it. proto is "udp" or "tcp".
func Lookup(port int, proto string) *Service { return byKey[key(port, proto)] }

// fits reports whether a listener with use u belongs on s's port.
func (s *Service) fits(u Use) bool {
	if u == UseTCPProxy {
		return true
	}
	for _, f := range s.Fits {
		if f == u {
			return true
		}
	}
	return false
}
