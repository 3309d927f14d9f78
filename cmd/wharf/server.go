package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"wharf/proxy"
	"wharf/proxy/upstream"
)

// This file is runtime control of proxy servers: the admin endpoints
// GET /api/servers and POST /api/servers/BACKEND/SERVER, and `wharf
// server`, their client. They are HAProxy's runtime API `show servers
// state` and `set server BACKEND/SERVER state ready|drain|maint` /
// `weight N`.

// serverRow is one server in GET /api/servers and the answer to a POST.
type serverRow struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	Address string `json:"address"`
	// Health is "up" or "down" (health checks); Admin "ready", "drain" or
	// "maint" (set here).
	Health string `json:"health"`
	Admin  string `json:"admin"`
	// Weight is the effective weight, ConfigWeight the configured one.
	Weight       int   `json:"weight"`
	ConfigWeight int   `json:"config_weight"`
	Active       int64 `json:"active"`
}

func rowOf(backend string, s *upstream.Server) serverRow {
	h := "down"
	if s.Up() {
		h = "up"
	}
	return serverRow{Backend: backend, Server: s.Name, Address: s.Addr, Health: h, Admin: s.State().String(),
		Weight: s.EffectiveWeight(), ConfigWeight: s.Weight, Active: s.Active()}
}

// registerServerEndpoints adds the runtime server control to the admin
// server. Both endpoints need the bearer token when one is set (the
// admin listener protects everything not listed as open).
func (g *gateway) registerServerEndpoints() {
	g.admin.Handle("GET /api/servers", http.HandlerFunc(g.listServers))
	g.admin.Handle("POST /api/servers/{backend}/{server}", http.HandlerFunc(g.setServer))
}

// runningProxies returns the running proxy set. It lives as long as the
// process: a reload changes it in place, keeping the state set on the
// servers it does not change (proxy.Set.CarryAdminState).
func (g *gateway) runningProxies() *proxy.Set {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proxySet
}

func (g *gateway) listServers(w http.ResponseWriter, _ *http.Request) {
	rows := []serverRow{}
	for _, s := range g.runningProxies().Servers() {
		rows = append(rows, rowOf(s.Stats().Backend, s))
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": rows})
}

// setServer applies state=ready|drain|maint and/or weight=N (form or
// query values) to one server, all or nothing: a bad value changes
// nothing.
func (g *gateway) setServer(w http.ResponseWriter, r *http.Request) {
	backend, server := r.PathValue("backend"), r.PathValue("server")
	s, err := g.runningProxies().Server(backend, server)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	stateArg, weightArg := r.Form.Get("state"), r.Form.Get("weight")
	if stateArg == "" && weightArg == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give state=ready|drain|maint and/or weight=0-256"})
		return
	}
	var st upstream.AdminState
	if stateArg != "" {
		if st, err = upstream.ParseAdminState(stateArg); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	weight := -1
	if weightArg != "" {
		weight, err = strconv.Atoi(weightArg)
		if err != nil || weight < 0 || weight > upstream.MaxWeight {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("weight %q: want a whole number 0-%d", weightArg, upstream.MaxWeight)})
			return
		}
	}
	if weight >= 0 {
		if err := s.SetWeight(weight); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	if stateArg != "" {
		s.SetState(st)
	}
	writeJSON(w, http.StatusOK, rowOf(backend, s))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

const serverUsage = `Usage: wharf server [-c FILE] [--admin HOST:PORT] COMMAND

Runtime control of a running wharf's proxy servers, through its admin
listener ([admin] listen of FILE; the bearer token from [admin] token or
token_file is sent when FILE sets one). As HAProxy's runtime API:

  wharf server list                    every server: health, admin state, weight, active
  wharf server drain BACKEND/SERVER    no new connections or requests; those in flight finish
                                       (set server B/S state drain)
  wharf server maint BACKEND/SERVER    out of service: no new ones either, those in flight
                                       are not cut (set server B/S state maint)
  wharf server ready BACKEND/SERVER    back in service (set server B/S state ready)
  wharf server weight BACKEND/SERVER N weight 0-256; 0 takes no new ones (set server B/S weight N)

Health checks keep running in every state. The state and weight last until
changed or wharf restarts; a reload keeps them on every server it keeps,
also in a backend it rebuilds. list --json prints the admin API's JSON; list --names
prints BACKEND/SERVER per line.

Flags:
`

// serverCmd implements `wharf server`.
func serverCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wharf server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serverUsage); fs.PrintDefaults() }
	af := addAdminFlags(fs, "settings")
	asJSON := fs.Bool("json", false, "list: print the JSON of GET /api/servers")
	names := fs.Bool("names", false, "list: print BACKEND/SERVER per line (for shell completion)")
	// Flags may come before, between or after the arguments.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	cmd := pos[0]
	want := map[string]int{"list": 1, "drain": 2, "maint": 2, "ready": 2, "weight": 3}[cmd]
	if want == 0 {
		fmt.Fprintf(stderr, "wharf server: unknown command %q: want list, drain, maint, ready or weight\n", cmd)
		return 2
	}
	if len(pos) != want {
		fmt.Fprintf(stderr, "wharf server %s: want %s\n", cmd, map[string]string{
			"list": "no arguments", "drain": "BACKEND/SERVER", "maint": "BACKEND/SERVER",
			"ready": "BACKEND/SERVER", "weight": "BACKEND/SERVER WEIGHT",
		}[cmd])
		return 2
	}
	var backend, server string
	form := url.Values{}
	if cmd != "list" {
		var ok bool
		if backend, server, ok = strings.Cut(pos[1], "/"); !ok || backend == "" || server == "" {
			fmt.Fprintf(stderr, "wharf server %s: %q: want BACKEND/SERVER (wharf server list shows them)\n", cmd, pos[1])
			return 2
		}
		if cmd == "weight" {
			if n, err := strconv.Atoi(pos[2]); err != nil || n < 0 || n > upstream.MaxWeight {
				fmt.Fprintf(stderr, "wharf server weight: %q: want a whole number 0-%d\n", pos[2], upstream.MaxWeight)
				return 2
			}
			form.Set("weight", pos[2])
		} else {
			form.Set("state", cmd)
		}
	}
	ac, err := af.client(10 * time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "wharf server: %v\n", err)
		return 2
	}
	base := ac.base + "/api/servers"
	var req *http.Request
	if cmd == "list" {
		req, err = http.NewRequest(http.MethodGet, base, nil)
	} else {
		u := base + "/" + url.PathEscape(backend) + "/" + url.PathEscape(server)
		req, err = http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "wharf server: %v\n", err)
		return 2
	}
	if ac.token != "" {
		req.Header.Set("Authorization", "Bearer "+ac.token)
	}
	resp, err := ac.client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "wharf server: cannot reach the admin listener (%v); is wharf running with this config?\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			fmt.Fprintf(stderr, "wharf server %s: %s\n", cmd, e.Error)
		} else {
			fmt.Fprintf(stderr, "wharf server %s: %s: %s", cmd, resp.Status, body)
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			fmt.Fprintln(stderr, "wharf server: the admin listener wants a bearer token: run with -c naming the config that sets [admin] token or token_file")
		case resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), "404 page not found"):
			fmt.Fprintln(stderr, "wharf server: this wharf has no /api/servers (older version?)")
		}
		return 1
	}
	if cmd == "list" && *asJSON {
		stdout.Write(body)
		return 0
	}
	var rows []serverRow
	if cmd == "list" {
		var l struct{ Servers []serverRow }
		err = json.Unmarshal(body, &l)
		rows = l.Servers
	} else {
		var r serverRow
		err = json.Unmarshal(body, &r)
		rows = []serverRow{r}
	}
	if err != nil {
		fmt.Fprintf(stderr, "wharf server: unexpected answer from the admin listener: %v\n", err)
		return 1
	}
	if *names {
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s/%s\n", r.Backend, r.Server)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tHEALTH\tADMIN\tWEIGHT\tACTIVE")
	for _, r := range rows {
		wt := strconv.Itoa(r.Weight)
		if r.Weight != r.ConfigWeight {
			wt += fmt.Sprintf(" (config %d)", r.ConfigWeight)
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%d\n", r.Backend, r.Server, r.Address, r.Health, r.Admin, wt, r.Active)
	}
	tw.Flush()
	return 0
}
