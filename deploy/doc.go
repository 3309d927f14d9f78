// Package deploy holds deployment files, not code: the systemd unit
// (wharf.service), the system user (wharf.sysusers) and logrotate rules
// (wharf.logrotate), documented in README.md, and a Grafana dashboard
// (grafana-wharf.json). Its tests check them with
// the real tools (systemd-analyze, systemd-sysusers, logrotate) and run
// the real wharf binary with the unit's privileges to show it binds a
// port below 1024 without root.
package deploy
