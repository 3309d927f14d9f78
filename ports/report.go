package ports

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"wharf/conf"
)

// Report is what `wharf ports` prints.
type Report struct {
	// Config is the config file path.
	Config string `json:"config"`
	// Listeners are the declared listeners (Declared order).
	Listeners []Listener `json:"listeners"`
	// Warnings are Check's findings; never nil.
	Warnings []Warning `json:"warnings"`
	// Audit is set when the host's sockets were audited.
	Audit *Audit `json:"audit,omitempty"`
}

// NewReport builds the report for c, without audit.
func NewReport(c *conf.Config) *Report {
	ls := Declared(c)
	ws := Check(ls)
	if ws == nil {
		ws = []Warning{}
	}
	if ls == nil {
		ls = []Listener{}
	}
	return &Report{Config: c.Path, Listeners: ls, Warnings: ws}
}

// AddAudit audits the sockets listening on this host, read under
// procRoot (normally "/proc").
func (r *Report) AddAudit(procRoot string) error {
	ss, err := ReadSockets(procRoot)
	if err != nil {
		return err
	}
	eph, err := EphemeralRange(procRoot)
	if err != nil {
		eph = [2]int{} // only a hint; the audit stands without it
	}
	r.Audit = AuditSockets(r.Listeners, ss, eph)
	return nil
}

// Findings counts what deserves a look: warnings, and with an audit,
// unexpected listeners and declared listeners that are not listening.
func (r *Report) Findings() int {
	n := len(r.Warnings)
	if r.Audit != nil {
		n += r.Audit.Unexpected() + len(r.Audit.NotListening)
	}
	return n
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as aligned tables: declared listeners,
// warnings, then (with an audit) the listening sockets and the declared
// listeners not listening, and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "PROTO\tADDRESS\tPORT\tFRONTEND\tMODE\tTLS\tACL\tSERVICE\tDECLARED AT\n")
	for i := range r.Listeners {
		l := &r.Listeners[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Proto, displayHost(l.Host), portText(l.Port),
			l.Frontend, l.Mode, tlsText(l.TLS), aclText(l), orDash(l.Service), l.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\nWarnings:\n")
		for _, x := range r.Warnings {
			fmt.Fprintf(w, "  [%s] %s\n", x.Kind, x)
		}
	}
	if a := r.Audit; a != nil {
		fmt.Fprintf(w, "\nListening on this host (/proc/net/{tcp,tcp6,udp,udp6}):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "PROTO\tADDRESS\tPORT\tPID\tPROCESS\tSERVICE\tSTATUS\n")
		for _, s := range a.Sockets {
			pid, proc := "-", "-"
			if s.PID != 0 {
				pid, proc = strconv.Itoa(s.PID), s.Process
			}
			status := s.Status
			if s.DeclaredBy != "" {
				status += " (" + s.DeclaredBy + ")"
			}
			if s.Ephemeral && s.Status == StatusUnexpected {
				status += " (ephemeral port)"
			}
			if s.Count > 1 {
				proc += fmt.Sprintf(" (%d sockets)", s.Count)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Proto, s.Addr, s.Port, pid, proc, orDash(s.Service), status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, l := range a.NotListening {
			fmt.Fprintf(w, "  declared but not listening: %s %s\n", l.Path, l.URL)
		}
		for _, l := range a.Unchecked {
			why := "port 0 is chosen when wharf starts"
			if l.Port != 0 {
				why = "host does not resolve"
			}
			fmt.Fprintf(w, "  not checked: %s %s (%s)\n", l.Path, l.URL, why)
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.summary())
	return nil
}

func (r *Report) summary() string {
	s := plural(len(r.Warnings), "warning")
	if r.Audit != nil {
		s += ", " + plural(r.Audit.Unexpected(), "unexpected listener") + ", " +
			strconv.Itoa(len(r.Audit.NotListening)) + " declared but not listening"
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func portText(p int) string {
	if p == 0 {
		return "0 (any)"
	}
	return strconv.Itoa(p)
}
