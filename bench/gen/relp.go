package gen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"wharf/relp"
)

// relpWindow is how many messages a RELP stream keeps unanswered: librelp's
// default, what rsyslog's omrelp sends with.
const relpWindow = relp.DefaultWindow

// runRELP is runTCP for relp:// targets: a RELP session (open, then one
// syslog frame per message, at most relpWindow unanswered; a reader
// goroutine counts the answers). A message counts as sent once written,
// as over TCP; the receiver's tracker decides what arrived.
func (w *worker) runRELP(ctx context.Context) error {
	c := w.conn
	if _, err := c.Write(relp.AppendFrame(nil, 1, relp.CmdOpen, relp.ClientOffers("wharf-bench"))); err != nil {
		return fmt.Errorf("bench/gen: stream %d: relp open: %w", w.idx, err)
	}
	var acked atomic.Uint64
	answered := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 0, 64<<10)
		tmp := make([]byte, 64<<10)
		opened := false
		for {
			k, err := c.Read(tmp)
			buf = append(buf, tmp[:k]...)
			off, n := 0, uint64(0)
			for {
				f, used, _, perr := relp.Next(buf[off:], 1<<20)
				if perr != nil {
					readErr <- perr
					return
				}
				if used == 0 {
					break
				}
				off += used
				if string(f.Cmd) != relp.CmdRsp {
					readErr <- fmt.Errorf("relp: server sent %q", f.Cmd)
					return
				}
				if code, text, _, _ := relp.ParseRsp(f.Data); code != 200 {
					readErr <- fmt.Errorf("relp: server answered %d %s", code, text)
					return
				}
				if !opened {
					opened = true
					continue
				}
				n++
			}
			buf = buf[:copy(buf, buf[off:])]
			if n > 0 || opened {
				acked.Add(n)
				select {
				case answered <- struct{}{}:
				default:
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()

	tp := w.template()
	msgLen := len(tp.Frame)
	per := min(max(w.g.cfg.WriteSize/(msgLen+24), 1), relpWindow)
	buf := make([]byte, 0, per*(msgLen+24))
	txnr := uint32(1)
	first := true
	for w.sent < w.count {
		// Wait for room in the window.
		for w.sent-acked.Load() >= relpWindow {
			select {
			case <-answered:
			case err := <-readErr:
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("bench/gen: stream %d: %w", w.idx, err)
			case <-ctx.Done():
				return nil
			}
		}
		room := uint64(relpWindow) - (w.sent - acked.Load())
		n := w.allowance(ctx, min(uint64(per), room))
		if n == 0 {
			return nil
		}
		tp.SetTime(time.Now().UnixNano())
		b := buf[:0]
		for i := uint64(0); i < n; i++ {
			if !first {
				tp.IncSeq()
			}
			first = false
			txnr = relp.NextTxnr(txnr)
			b = relp.AppendFrame(b, txnr, relp.CmdSyslog, tp.Frame)
		}
		if _, err := c.Write(b); err != nil {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("bench/gen: stream %d: write %s: %w", w.idx, w.g.addr, err)
		}
		w.sent += n
		w.g.sent[w.idx].Store(w.sent)
	}
	return nil
}
