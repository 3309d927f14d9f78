package recv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NodeLedger is one wharf node's own account of the messages it read,
// taken from its /metrics (see ParseMetrics).
type NodeLedger struct {
	// Node names the node (its admin address).
	Node string `json:"node"`
	// Read is wharf_frontend_received_total: messages wharf read from its
	// senders, summed over every frontend and bind.
	Read uint64 `json:"read"`
	// Delivered is wharf_sink_sent_total of the sink(s) looked at.
	Delivered uint64 `json:"delivered"`
	// Lost counts the messages wharf read and then dropped, by
	// "sink/NAME/REASON" (wharf_sink_dropped_total) and
	// "frontend/NAME/REASON" (wharf_frontend_dropped_total, only the
	// reasons that come after a message was counted as read: parse_error,
	// no_route, route_drop, rate_limit).
	Lost map[string]uint64 `json:"lost,omitempty"`
	// Queued is what waits for the sink: wharf_sink_queue_messages, plus
	// wharf_buffer_pending_records for disk-buffered sinks.
	Queued int64 `json:"queued"`
	// InFlight is wharf_sink_queue_bytes: nonzero while a batch is being
	// written or retried, when the counts are still moving.
	InFlight uint64 `json:"in_flight_bytes"`
}

// LostTotal is the sum of n.Lost.
func (n NodeLedger) LostTotal() uint64 {
	var s uint64
	for _, v := range n.Lost {
		s += v
	}
	return s
}

// Settled reports whether the node's own books balance: everything it
// read is delivered, counted lost or queued, and nothing is in flight.
func (n NodeLedger) Settled() bool {
	return n.InFlight == 0 && n.Queued == 0 && n.Delivered+n.LostTotal() >= n.Read
}

// afterRead are the frontend drop reasons that happen to a message
// already counted in wharf_frontend_received_total; the others
// (oversize, framing_error, incomplete_frame_at_close) are bytes that
// never became a read message.
var afterRead = map[string]bool{"parse_error": true, "no_route": true, "route_drop": true, "rate_limit": true}

// ParseMetrics reads a wharf /metrics page (Prometheus text format) into
// a NodeLedger. sink, when not empty, limits the sink series to that
// sink; with several sinks fed by the same frontends, set it, or
// Delivered counts each message once per sink.
func ParseMetrics(r io.Reader, node, sink string) (NodeLedger, error) {
	n := NodeLedger{Node: node, Lost: map[string]uint64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := splitSample(line)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "wharf_sink_") && sink != "" && labels["sink"] != sink {
			continue
		}
		v := uint64(max(value, 0))
		switch name {
		case "wharf_frontend_received_total":
			n.Read += v
		case "wharf_sink_sent_total":
			n.Delivered += v
		case "wharf_sink_dropped_total":
			if v > 0 {
				n.Lost["sink/"+labels["sink"]+"/"+labels["reason"]] += v
			}
		case "wharf_frontend_dropped_total":
			if v > 0 && afterRead[labels["reason"]] {
				n.Lost["frontend/"+labels["frontend"]+"/"+labels["reason"]] += v
			}
		case "wharf_sink_queue_messages":
			n.Queued += int64(value)
		case "wharf_buffer_pending_records":
			// Below zero after a restart on a non-empty buffer in wharf
			// builds before issue #12's fix (it was appended - acked since
			// start): no information, so 0.
			if sink == "" || labels["sink"] == "" || labels["sink"] == sink {
				n.Queued += int64(max(value, 0))
			}
		case "wharf_sink_queue_bytes":
			n.InFlight += v
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("bench/recv: metrics of %s: %w", node, err)
	}
	return n, nil
}

// splitSample parses `name{k="v",...} value`.
func splitSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	labels = map[string]string{}
	if i := strings.IndexByte(head, '{'); i >= 0 {
		name = head[:i]
		rest := strings.TrimSuffix(head[i+1:], "}")
		for rest != "" {
			k, after, found := strings.Cut(rest, `="`)
			if !found {
				break
			}
			// Values are escaped Prometheus strings: find the closing quote.
			j := 0
			var b strings.Builder
			for j < len(after) && after[j] != '"' {
				if after[j] == '\\' && j+1 < len(after) {
					j++
				}
				b.WriteByte(after[j])
				j++
			}
			labels[k] = b.String()
			rest = strings.TrimPrefix(after[min(j+1, len(after)):], ",")
		}
	} else {
		name = head
	}
	return name, labels, v, true
}

// ScrapeNode fetches http://admin/metrics (admin is host:port, or a full
// URL) and parses it with ParseMetrics.
func ScrapeNode(ctx context.Context, admin, sink string) (NodeLedger, error) {
	url := admin
	if !strings.Contains(url, "://") {
		url = "http://" + admin + "/metrics"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return NodeLedger{}, fmt.Errorf("bench/recv: metrics %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return NodeLedger{}, fmt.Errorf("bench/recv: metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return NodeLedger{}, fmt.Errorf("bench/recv: metrics %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body, admin, sink)
}

// Ledger sets what wharf nodes say they read, delivered and lost beside
// what the receiver counted. The identity it checks is the promise:
// every message wharf read is at the receiver or counted as lost with a
// reason (or still queued), and nothing else:
//
//	read = received (distinct) + counted losses + queued
//
// Uncounted is read - received - lost - queued: above zero, messages
// vanished without being counted; below zero, the receiver holds more
// than wharf read (another sender, or a message counted lost that
// arrived anyway, e.g. a batch that failed after part of it landed).
type Ledger struct {
	Nodes []NodeLedger `json:"nodes"`
	// Sent is what the senders wrote (0 when not known).
	Sent      uint64            `json:"sent,omitempty"`
	Read      uint64            `json:"read"`
	Delivered uint64            `json:"delivered"`
	Lost      map[string]uint64 `json:"lost,omitempty"`
	LostTotal uint64            `json:"lost_total"`
	Queued    int64             `json:"queued"`
	// Received, Duplicates are the receiver's distinct and repeated
	// messages of the run.
	Received   uint64 `json:"received"`
	Duplicates uint64 `json:"duplicates"`
	Uncounted  int64  `json:"uncounted"`
	// Settled is false while some node still has messages queued or in
	// flight: the identity is checked only once every node settled.
	Settled bool `json:"settled"`
}

// NewLedger adds up the nodes' accounts and the receiver's report. sent
// is what the senders wrote in total, 0 when not known.
func NewLedger(nodes []NodeLedger, rep Report, sent uint64) Ledger {
	l := Ledger{Nodes: nodes, Sent: sent, Lost: map[string]uint64{}, Settled: true,
		Received: rep.Unique, Duplicates: rep.Dups}
	for _, n := range nodes {
		l.Read += n.Read
		l.Delivered += n.Delivered
		l.Queued += n.Queued
		for k, v := range n.Lost {
			l.Lost[k] += v
			l.LostTotal += v
		}
		if !n.Settled() {
			l.Settled = false
		}
	}
	l.Uncounted = int64(l.Read) - int64(l.Received) - int64(l.LostTotal) - l.Queued
	return l
}

// OK reports whether the identity holds exactly.
func (l Ledger) OK() bool { return l.Settled && l.Uncounted == 0 }

// String renders the ledger as a few aligned lines, the difference
// flagged when there is one.
func (l Ledger) String() string {
	var b strings.Builder
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "node %s: read %d, delivered %d, counted lost %d, queued %d%s\n",
			n.Node, n.Read, n.Delivered, n.LostTotal(), n.Queued, map[bool]string{true: "", false: " (not settled)"}[n.Settled()])
	}
	if l.Sent > 0 {
		fmt.Fprintf(&b, "senders wrote %d; wharf read %d (%d written but never read by wharf)\n", l.Sent, l.Read, int64(l.Sent)-int64(l.Read))
	}
	keys := make([]string, 0, len(l.Lost))
	for k := range l.Lost {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lost := make([]string, 0, len(keys))
	for _, k := range keys {
		lost = append(lost, fmt.Sprintf("%s %d", k, l.Lost[k]))
	}
	fmt.Fprintf(&b, "ledger: read %d = received %d + counted lost %d", l.Read, l.Received, l.LostTotal)
	if len(lost) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(lost, ", "))
	}
	fmt.Fprintf(&b, " + queued %d; receiver duplicates %d\n", l.Queued, l.Duplicates)
	switch {
	case !l.Settled:
		fmt.Fprintf(&b, "ledger: NOT SETTLED: messages still queued or in flight; difference so far %d\n", l.Uncounted)
	case l.Uncounted > 0:
		fmt.Fprintf(&b, "ledger: MISMATCH: %d messages wharf read are neither at the receiver nor counted\n", l.Uncounted)
	case l.Uncounted < 0:
		fmt.Fprintf(&b, "ledger: MISMATCH: the receiver holds %d more than wharf read minus its counted losses\n", -l.Uncounted)
	default:
		b.WriteString("ledger: OK\n")
	}
	return b.String()
}
