package conf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// This file holds the security keys shared by several sections: TLS
// files and versions (syslog tls:// binds and servers, kafka) and the
// admin token. The helpers are exported so the packages that build TLS
// configs (ingest, sinks) read files and versions exactly as validation
// did.

// ParseTLSVersion maps "1.2" and "1.3" to crypto/tls versions; "" is 1.2.
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("TLS version %q: use \"1.2\" or \"1.3\" (older versions are broken)", s)
}

// DefaultTLSCiphers are the TLS 1.2 suites offered when tls_ciphers is
// unset: ECDHE key exchange (forward secrecy) with an AEAD cipher only.
// Go's own default adds the CBC suites with SHA-1 MACs (Lucky13-class
// padding oracles, no AEAD), which current guidance (Mozilla
// "intermediate", BSI TR-02102-2, NIST SP 800-52r2) no longer offers; every
// TLS 1.2 stack of the last decade (rsyslog/GnuTLS, syslog-ng/OpenSSL,
// Kafka's JVM, browsers, curl) has the GCM suites. TLS 1.3 is unaffected.
var DefaultTLSCiphers = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// TLSCiphersDoc is the reference text of every tls_ciphers key, after
// the scope ("`tls://` binds: ").
const TLSCiphersDoc = "TLS 1.2 cipher suites to offer, in order. Unset: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only (forward secrecy, AEAD); Go's own default would add the CBC suites with SHA-1 MACs, which current guidance (Mozilla intermediate, NIST SP 800-52r2) drops. List more only for a peer that has nothing better, e.g. `[\"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\"]` for old gear. Names are IANA's as Go's crypto/tls spells them; an unknown or TLS 1.3 name is an error, a suite Go classes as insecure is warned about. TLS 1.3 suites are all AEAD and not configurable."

// ParseTLSCiphers maps tls_ciphers names (IANA, as crypto/tls spells
// them, e.g. "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA") to suite IDs, in the
// order given; nil or empty gives DefaultTLSCiphers. weak lists the names
// Go classes as insecure (RC4, 3DES, CBC with SHA-256, RSA key exchange
// with CBC-SHA256), for a warning. TLS 1.3 names are refused: Go does not
// let them be chosen.
func ParseTLSCiphers(names []string) (ids []uint16, weak []string, err error) {
	if len(names) == 0 {
		names = DefaultTLSCiphers
	}
	byName := map[string]*tls.CipherSuite{}
	for _, cs := range tls.CipherSuites() {
		byName[cs.Name] = cs
	}
	insecure := map[string]bool{}
	for _, cs := range tls.InsecureCipherSuites() {
		byName[cs.Name] = cs
		insecure[cs.Name] = true
	}
	var errs []error // every bad name, not just the first
	for _, n := range names {
		cs := byName[n]
		switch {
		case cs == nil:
			errs = append(errs, fmt.Errorf("unknown cipher suite %q: use IANA names as Go spells them, e.g. %q", n, DefaultTLSCiphers[1]))
			continue
		case len(cs.SupportedVersions) == 1 && cs.SupportedVersions[0] == tls.VersionTLS13:
			errs = append(errs, fmt.Errorf("%s is a TLS 1.3 suite, which is always on and cannot be chosen; tls_ciphers lists TLS 1.2 suites", n))
			continue
		}
		if insecure[n] {
			weak = append(weak, n)
		}
		ids = append(ids, cs.ID)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return ids, weak, nil
}

// tlsCiphers checks a tls_ciphers key at p.
func (v *validator) tlsCiphers(p string, names []string) {
	if len(names) == 0 {
		return
	}
	_, weak, err := ParseTLSCiphers(names)
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() { // one error per bad name
			v.errAt(p+".tls_ciphers", "%v", e)
		}
		return
	}
	if err != nil {
		v.errAt(p+".tls_ciphers", "%v", err)
		return
	}
	if len(weak) > 0 {
		v.warn(p+".tls_ciphers", "%s: Go classes these suites as insecure; offer them only for a peer that has nothing better", strings.Join(weak, ", "))
	}
}

// LoadCertPool reads a PEM file of CA certificates. A file without a
// single certificate is an error (a key file given by mistake, say).
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// LoadKeyPair reads a PEM certificate (chain) and its private key, saying
// which file is at fault.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return tls.Certificate{}, fmt.Errorf("cannot read %s: %w", f, err)
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

// checkKeyPair checks a certificate and key pair for validation: each
// file that cannot be read is reported at its own key (both at once when
// both are missing); when both can, a pair that does not load is reported
// at certKey. report takes the key ("tls_cert") and the message.
func checkKeyPair(certKey, keyKey, certFile, keyFile string, report func(key, msg string)) {
	ok := true
	for _, f := range []struct{ key, file string }{{certKey, certFile}, {keyKey, keyFile}} {
		if _, err := os.Stat(f.file); err != nil {
			report(f.key, fmt.Sprintf("cannot read %s: %v", f.file, err))
			ok = false
		}
	}
	if !ok {
		return
	}
	if _, err := LoadKeyPair(certFile, keyFile); err != nil {
		report(certKey, err.Error())
	}
}

// HasTLSBind reports whether a frontend lists a tls:// or relp+tls:// bind. It looks at
// Bind (the strings), so it works before validation fills Binds.
func (f *Frontend) HasTLSBind() bool {
	for _, b := range f.Bind {
		if strings.HasPrefix(b, "tls://") || strings.HasPrefix(b, "relp+tls://") {
			return true
		}
	}
	return false
}

// ResolveToken returns the admin bearer token: Token, or the trimmed
// content of TokenFile; "" when neither is set (no token required).
func (a *Admin) ResolveToken() (string, error) {
	if a.TokenFile == "" {
		return a.Token, nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("admin.token_file: %s is empty", a.TokenFile)
	}
	return t, nil
}

// syslogTLS checks the TLS keys of a syslog frontend: required and
// loadable with a tls:// bind, absent without one.
func (v *validator) syslogTLS(p string, f *Frontend) {
	if !f.HasTLSBind() {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"tls_cert", f.TLSCert != ""}, {"tls_key", f.TLSKey != ""},
			{"tls_client_ca", f.TLSClientCA != ""}, {"tls_min_version", f.TLSMinVersion != ""},
			{"header_timeout", f.HeaderTimeout.Duration != 0 && !f.HasRELPBind()}, // relp://: the wait for "open"
			{"tls_ciphers", len(f.TLSCiphers) > 0},
		} {
			if k.set {
				v.errAt(p+"."+k.key, "key %s applies to tls:// binds only; this frontend has none (write bind = [\"tls://0.0.0.0:6514\"])", k.key)
			}
		}
		return
	}
	switch {
	case f.TLSCert == "" || f.TLSKey == "":
		v.errAt(p, "a tls:// or relp+tls:// bind needs tls_cert and tls_key (PEM certificate and private key files)")
	default:
		checkKeyPair("tls_cert", "tls_key", f.TLSCert, f.TLSKey, func(key, msg string) {
			v.errAt(p+"."+key, "%s", msg)
		})
	}
	if f.TLSClientCA != "" {
		if _, err := LoadCertPool(f.TLSClientCA); err != nil {
			v.errAt(p+".tls_client_ca", "%v", err)
		}
	}
	if _, err := ParseTLSVersion(f.TLSMinVersion); err != nil {
		v.errAt(p+".tls_min_version", "%v", err)
	}
	v.tlsCiphers(p, f.TLSCiphers)
	if f.HeaderTimeout.Duration < 0 {
		v.errAt(p+".header_timeout", "must not be negative")
	}
}

// adminToken checks the admin token keys.
func (v *validator) adminToken() {
	a := &v.c.Admin
	if a.Token != "" && a.TokenFile != "" {
		v.errAt("admin.token", "set token or token_file, not both")
		return
	}
	if a.TokenFile != "" {
		if _, err := a.ResolveToken(); err != nil {
			v.errAt("admin.token_file", "%v", strings.TrimPrefix(err.Error(), "admin.token_file: "))
		}
	}
	if a.Listen == "off" && (a.Token != "" || a.TokenFile != "") {
		v.warn("admin.token", "the admin listener is off; the token is unused")
	}
	for i, h := range a.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ @") {
			v.errAt(idx("admin.allowed_hosts", i), "%q: want a host name without scheme or port, e.g. \"wharf1.example.com\"", h)
		}
	}
	v.adminTLS()
	if a.Listen == "off" {
		return
	}
	host, _, err := parseHostPort(a.Listen, true)
	if err != nil || adminLoopback(host) {
		return
	}
	mtls := a.TLS() && a.TLSClientCA != ""
	switch {
	case mtls:
		// Every request carries a client certificate signed by the CA.
	case a.Token == "" && a.TokenFile == "" && !a.AllowRemoteWithoutToken:
		v.errAt("admin.listen", "%s is not a loopback address and no token is set: anyone who reaches it could reload the config and read every message (/api/tap). Set token_file (or token) with tls_cert/tls_key, require client certificates (tls_client_ca), listen on 127.0.0.1, or set allow_remote_without_token = true if a firewall keeps others out", a.Listen)
	case a.Token == "" && a.TokenFile == "":
		v.warn("admin.listen", "%s is not a loopback address and no token is set (allow_remote_without_token): whoever reaches it can reload the config and read every message; firewall it", a.Listen)
	default:
		v.warn("admin.listen", "%s is not a loopback address: /metrics, /api/status and the status page are readable without the token by whoever reaches it; firewall it", a.Listen)
	}
	if !a.TLS() && (a.Token != "" || a.TokenFile != "") {
		v.warn("admin.listen", "%s is not a loopback address and serves plain HTTP: the token and tapped messages cross the network in clear text; set tls_cert and tls_key", a.Listen)
	}
}

// adminTLS checks the admin listener's certificate keys: both or neither,
// files that load, a client CA only with a certificate.
func (v *validator) adminTLS() {
	a := &v.c.Admin
	switch {
	case (a.TLSCert == "") != (a.TLSKey == ""):
		v.errAt("admin", "set both tls_cert and tls_key to serve the admin listener over HTTPS, or neither")
		return
	case a.TLSClientCA != "" && a.TLSCert == "":
		v.errAt("admin.tls_client_ca", "requires tls_cert and tls_key: client certificates are asked for in a TLS handshake")
		return
	case a.TLSCert == "":
		return
	}
	if a.Listen == "off" {
		v.warn("admin.tls_cert", "the admin listener is off; the certificate is unused")
		return
	}
	checkKeyPair("tls_cert", "tls_key", a.TLSCert, a.TLSKey, func(key, msg string) {
		v.errAt("admin."+key, "%s", msg)
	})
	if a.TLSClientCA != "" {
		if _, err := LoadCertPool(a.TLSClientCA); err != nil {
			v.errAt("admin.tls_client_ca", "%v", err)
		}
	}
}

// adminLoopback reports whether the admin listen host is loopback only:
// a loopback literal, or a name that resolves to loopback addresses only
// (localhost). A name that does not resolve counts as not loopback.
func adminLoopback(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback()
	}
	ips, err := resolve(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, a := range ips {
		if !a.IsLoopback() {
			return false
		}
	}
	return true
}

// HasRELPBind reports whether a frontend lists a relp:// or relp+tls://
// bind. It looks at Bind (the strings), so it works before validation.
func (f *Frontend) HasRELPBind() bool {
	for _, b := range f.Bind {
		if strings.HasPrefix(b, "relp://") || strings.HasPrefix(b, "relp+tls://") {
			return true
		}
	}
	return false
}

// relp checks the RELP keys of a syslog frontend: only with a RELP bind,
// relp_window in range, relp_ack one of the levels, and "durable" only
// where every sink the frontend sends to has a disk buffer (otherwise the
// promise could not be kept).
func (v *validator) relp(p string, f *Frontend) {
	if !f.HasRELPBind() {
		if f.RELPWindow != 0 {
			v.errAt(p+".relp_window", "relp_window applies to relp:// and relp+tls:// binds only; this frontend has none")
		}
		if f.RELPAck != "" {
			v.errAt(p+".relp_ack", "relp_ack applies to relp:// and relp+tls:// binds only; this frontend has none")
		}
		return
	}
	if f.RELPWindow < 1 || f.RELPWindow > MaxRELPWindow {
		v.errAt(p+".relp_window", "%d out of range (1-%d)", f.RELPWindow, MaxRELPWindow)
	}
	v.enum(p, "relp_ack", f.RELPAck, "queued", "durable", "delivered")
	if f.RELPAck != "durable" {
		return
	}
	names := append([]string(nil), f.Sinks...)
	for _, r := range f.Routes {
		names = append(names, r.Sinks...)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		if s := v.c.Sinks[n]; s != nil && s.Buffer == nil {
			v.errAt(p+".relp_ack", "relp_ack = \"durable\" needs a disk buffer on every sink the frontend sends to; sink %q has none (add [sink.%s.buffer] dir = \"...\", or use relp_ack = \"queued\" or \"delivered\")", n, n)
		}
	}
}
