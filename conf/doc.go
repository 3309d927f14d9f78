// Package conf reads wharf's TOML config into a Config: the frontends
// and their binds, the routes from ports to sinks, the sinks, the proxy
// backends, the admin endpoint and the global settings.
//
// Load and Parse decode the file with BurntSushi/toml, fill in defaults
// (defaults.go, each value with the reason for it) and validate the
// result. Every problem found is reported at once, each with its file
// position and config path ("wharf.toml:3:1: frontend.edge.bind[1]: port
// 70000 out of range (1-65535)"), in an Errors; a key that decodes into
// nothing is one of them. Non-fatal findings end up in Config.Warnings.
//
// The package knows the config only: it opens no sockets and starts
// nothing, and no other wharf package is upstream of it. cmd/wharf turns a Config into listeners, route
// tables, sink runners and proxies. Reference returns the config
// reference that `wharf help config` prints.
package conf
