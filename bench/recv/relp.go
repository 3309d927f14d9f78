package recv

import (
	"errors"
	"io"
	"net"

	"wharf/relp"
)

// serveRELP reads one RELP session (relp:// receivers): it answers open,
// accounts for every syslog frame and acknowledges it at once, one write
// of answers per read, and answers close.
func serveRELP(c net.Conn, col *collector) error {
	buf := make([]byte, 256<<10)
	var sess relp.Server
	var out []byte
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if n > 0 {
			have += n
			off := 0
			out = out[:0]
			closing := false
			for {
				f, used, _, perr := relp.Next(buf[off:have], len(buf)-relp.MaxHeader-1)
				if perr != nil {
					return perr
				}
				if used == 0 {
					break
				}
				off += used
				kind, perr := sess.Accept(f)
				if perr != nil {
					return perr
				}
				switch kind {
				case relp.KindOpen:
					out = relp.AppendRsp(out, f.Txnr, 200, relp.OpenResponse("wharf-bench"))
				case relp.KindSyslog:
					col.msg(f.Data)
					out = relp.AppendRsp(out, f.Txnr, 200, "OK")
				case relp.KindClose:
					out = relp.AppendRsp(out, f.Txnr, 200, "OK")
					closing = true
				default:
					out = relp.AppendRsp(out, f.Txnr, 500, "command not supported")
				}
			}
			col.flush(n)
			have = copy(buf, buf[off:have])
			if len(out) > 0 {
				if _, werr := c.Write(out); werr != nil {
					return werr
				}
			}
			if closing {
				return nil
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
