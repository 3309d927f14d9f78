// Package deploy holds deployment files, not code: the systemd unit
// (wharf.service), the system user (wharf.sysusers) and logrotate rules
// (wharf.logrotate), documented in README.md, a Grafana dashboard
// (grafana-wharf.json) and the container image's config
// (docker/wharf.toml; the Dockerfile is at the repository root, linted by
// docker_test.go, which also runs its build line). Its tests check them with
// the real tools (systemd-analyze, systemd-sysusers, logrotate) and run
// the real wharf binary with the unit's privileges to show it binds a
// port below 1024 without root.
package deploy
