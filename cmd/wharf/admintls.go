package main

// The admin listener over HTTPS: the server side (certificate loaded at
// start and on every reload) and the client side that `wharf tap` and
// `wharf server` use to reach it.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"wharf/conf"
)

// adminTLS holds the admin listener's TLS settings. Each handshake reads
// the current config, so a reload swaps the certificate and client CAs
// for new connections; open ones keep theirs.
type adminTLS struct {
	config atomic.Pointer[tls.Config]
}

// newAdminTLS loads a's certificate (and client CA) and returns the
// holder and the base config to serve with.
func newAdminTLS(a *conf.Admin) (*adminTLS, *tls.Config, error) {
	t := &adminTLS{}
	if err := t.load(a); err != nil {
		return nil, nil, err
	}
	base := &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.config.Load(), nil },
	}
	return t, base, nil
}

// load reads a's files and swaps them in; on error nothing changes.
func (t *adminTLS) load(a *conf.Admin) error {
	cert, err := conf.LoadKeyPair(a.TLSCert, a.TLSKey)
	if err != nil {
		return fmt.Errorf("admin: tls_cert: %w", err)
	}
	// TLS 1.2 with ECDHE and AEAD only, as every other TLS endpoint;
	// Go's default list would add the CBC suites with SHA-1 MACs.
	ciphers, _, err := conf.ParseTLSCiphers(nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: ciphers, Certificates: []tls.Certificate{cert}}
	if a.TLSClientCA != "" {
		pool, err := conf.LoadCertPool(a.TLSClientCA)
		if err != nil {
			return fmt.Errorf("admin: tls_client_ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	t.config.Store(cfg)
	return nil
}

// reloadAdminTLS reads the admin listener's certificate files again (a
// renewed certificate applies to new connections) and applies its
// allowed_hosts. Turning HTTPS on or off needs a restart. Called with
// g.mu held.
func (g *gateway) reloadAdminTLS(a *conf.Admin) {
	if g.admin != nil {
		g.admin.SetAllowedHosts(a.AllowedHosts) // allowed_hosts apply at once too
	}
	switch {
	case g.admin == nil:
	case (g.adminTLS != nil) != a.TLS():
		g.log.Warn("admin tls_cert/tls_key added or removed; HTTPS on the admin listener changes at the next restart")
	case g.adminTLS != nil:
		if err := g.adminTLS.load(a); err != nil {
			g.log.Error("admin TLS files not reloaded; the previous certificate stays in use", "err", err)
		}
	}
}

// adminFlags are the flags of the commands that talk to a running wharf's
// admin listener (`wharf tap`, `wharf server`).
type adminFlags struct {
	fs                *flag.FlagSet
	path, addr        *string
	cacert, cert, key *string
}

func addAdminFlags(fs *flag.FlagSet, what string) *adminFlags {
	return &adminFlags{
		fs:     fs,
		path:   fs.String("c", defaultConfig, "config file of the running wharf (for its admin address, token and TLS "+what+")"),
		addr:   fs.String("admin", "", "admin listener host:port, or https://host:port (default: [admin] listen from the config)"),
		cacert: fs.String("cacert", "", "PEM CA file to verify the admin listener's certificate with (default: trust exactly the config's [admin] tls_cert)"),
		cert:   fs.String("cert", "", "PEM client certificate, when the admin listener requires one ([admin] tls_client_ca)"),
		key:    fs.String("key", "", "PEM private key for -cert"),
	}
}

// adminClient reaches a running wharf's admin listener.
type adminClient struct {
	base   string // http://host:port or https://host:port
	token  string // bearer token; "" for none
	client *http.Client
}

// client resolves the flags: -admin wins for the address; the config
// (read when -admin is not given, or -c is) gives the address, the token
// and whether the listener serves HTTPS. timeout 0 means none (streams).
func (f *adminFlags) client(timeout time.Duration) (*adminClient, error) {
	cSet := false
	f.fs.Visit(func(fl *flag.Flag) { cSet = cSet || fl.Name == "c" })
	addr, scheme := *f.addr, "http"
	if rest, ok := strings.CutPrefix(addr, "https://"); ok {
		addr, scheme = rest, "https"
	} else {
		addr = strings.TrimPrefix(addr, "http://")
	}
	var (
		token string
		adm   *conf.Admin
	)
	if addr == "" || cSet {
		cfg, err := conf.Load(*f.path)
		if err != nil {
			return nil, fmt.Errorf("config %s is invalid:\n%v", *f.path, err)
		}
		if token, err = cfg.Admin.ResolveToken(); err != nil {
			return nil, err
		}
		if addr == "" {
			addr = cfg.Admin.Listen
			if addr == "" || addr == "off" {
				return nil, fmt.Errorf("config %s has no admin listener ([admin] listen = %q)", *f.path, addr)
			}
		}
		adm = &cfg.Admin
		if adm.TLS() {
			scheme = "https"
		}
	}
	c := &adminClient{base: scheme + "://" + dialable(addr), token: token, client: &http.Client{Timeout: timeout}}
	if scheme == "https" {
		tc, err := f.clientTLS(adm)
		if err != nil {
			return nil, err
		}
		c.client.Transport = &http.Transport{TLSClientConfig: tc, Proxy: nil}
	}
	return c, nil
}

// clientTLS is the TLS config to reach the admin listener: verified with
// -cacert, else pinned to the config's own certificate (the command runs
// beside wharf and reads the same files), else the system roots; with
// -cert/-key a client certificate.
func (f *adminFlags) clientTLS(adm *conf.Admin) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case *f.cacert != "":
		pool, err := conf.LoadCertPool(*f.cacert)
		if err != nil {
			return nil, fmt.Errorf("-cacert: %w", err)
		}
		tc.RootCAs = pool
	case adm != nil && adm.TLS():
		pin, err := conf.LoadKeyPair(adm.TLSCert, adm.TLSKey)
		if err != nil {
			// The key may be readable by wharf's user only: the
			// certificate alone is enough to pin.
			if pin, err = loadCertOnly(adm.TLSCert); err != nil {
				return nil, fmt.Errorf("[admin] tls_cert: %w", err)
			}
		}
		leaf := pin.Certificate[0]
		tc.InsecureSkipVerify = true // replaced by the pin below
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errors.New("the admin listener's certificate is not the config's [admin] tls_cert (pass -cacert to verify against a CA instead)")
			}
			return nil
		}
	}
	if (*f.cert == "") != (*f.key == "") {
		return nil, errors.New("give both -cert and -key, or neither")
	}
	if *f.cert != "" {
		pair, err := conf.LoadKeyPair(*f.cert, *f.key)
		if err != nil {
			return nil, fmt.Errorf("-cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// loadCertOnly reads the first certificate of a PEM file.
func loadCertOnly(file string) (tls.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return tls.Certificate{}, err
	}
	var c tls.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			c.Certificate = append(c.Certificate, blk.Bytes)
		}
	}
	if len(c.Certificate) == 0 {
		return c, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	if _, err := x509.ParseCertificate(c.Certificate[0]); err != nil {
		return c, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}
