package conf

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml keeps key positions private, so positions for
// validation errors come from this small scanner. It only runs on input
// the toml parser has already accepted, and it never fails: whatever it
// cannot follow simply has no position.

// pos is a 1-based line and byte column.
type pos struct {
	Line, Col int
	// File is the included file the position is in; "" for the file
	// being validated.
	File string
}

// posIndex maps paths as validation writes them ("frontend.edge.bind[1]",
// "frontend.edge.route[0].sinks") to where they appear in the file.
type posIndex struct {
	at map[string]pos
	// stmt is, for a key path, the byte range of its whole "key = value"
	// statement in the scanned text: Parse blanks it out to carry on past
	// a type error.
	stmt map[string][2]int
	// byKey lists, for a path without array-table indexes ("frontend.edge.
	// route.sinks"), the indexed paths in document order. Undecoded keys
	// come without indexes; this recovers which element they were in.
	byKey map[string][]string
}

// lookup returns the position of path or of its nearest ancestor.
func (x *posIndex) lookup(path string) (pos, bool) {
	if x == nil {
		return pos{}, false
	}
	for path != "" {
		if p, ok := x.at[path]; ok {
			return p, true
		}
		path = parentPath(path)
	}
	return pos{}, false
}

// parentPath strips the last ".key" or "[i]" of path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	inQuote := false
	last := -1
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '"':
			inQuote = !inQuote
		case '\\':
			if inQuote {
				i++
			}
		case '.':
			if !inQuote {
				last = i
			}
		}
	}
	if last < 0 {
		return ""
	}
	return path[:last]
}

// seg is one path component; idx >= 0 marks an array-table element or an
// array element.
type seg struct {
	name string
	idx  int
}

func renderPath(segs []seg, withIdx bool) string {
	var b strings.Builder
	for i, s := range segs {
		if s.name != "" || s.idx < 0 {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(quoteKey(s.name))
		}
		if withIdx && s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// quoteKey writes a key component as TOML would: bare when it can be.
func quoteKey(k string) string { return toml.Key{k}.String() }

type scanner struct {
	src       string
	i         int
	line, col int
	x         *posIndex
	arrays    map[string]int // array-table path (unindexed) -> element count
}

func indexPositions(src string) *posIndex {
	s := &scanner{src: strings.TrimPrefix(src, "\ufeff"), line: 1, col: 1, x: &posIndex{at: map[string]pos{}, byKey: map[string][]string{}, stmt: map[string][2]int{}}, arrays: map[string]int{}}
	defer func() {
		// The scanner trusts that the toml parser accepted src; if it is
		// still confused, keep what it found so far.
		_ = recover()
	}()
	s.document()
	return s.x
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *scanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
		s.col = 1
	} else {
		s.col++
	}
	s.i++
}

func (s *scanner) here() pos { return pos{Line: s.line, Col: s.col} }

// skipSpace skips blanks, and with nl also newlines and comments.
func (s *scanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		case c == '\n' && nl:
			s.advance()
		default:
			return
		}
	}
}

func (s *scanner) record(segs []seg, p pos) {
	full := renderPath(segs, true)
	if _, dup := s.x.at[full]; dup {
		return
	}
	s.x.at[full] = p
	if last := segs[len(segs)-1]; last.name == "" && last.idx >= 0 {
		return // an array element, not a key
	}
	plain := renderPath(segs, false)
	s.x.byKey[plain] = append(s.x.byKey[plain], full)
}

func (s *scanner) document() {
	var ctx []seg
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		p := s.here()
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			names := s.key()
			s.skipSpace(false)
			for !s.eof() && s.peek() == ']' {
				s.advance()
			}
			ctx = s.resolve(names, array)
			s.record(ctx, p)
		} else {
			names := s.key()
			s.keyValue(ctx, names, p, start)
		}
		if s.i == start { // no progress: give up rather than loop
			return
		}
		s.skipSpace(false)
	}
}

// resolve turns header names into segments, pointing every prefix that is
// an array table at its latest element.
func (s *scanner) resolve(names []string, newArray bool) []seg {
	segs := make([]seg, 0, len(names))
	plain := make([]string, 0, len(names))
	for i, n := range names {
		plain = append(plain, quoteKey(n))
		key := strings.Join(plain, ".")
		idx := -1
		if i == len(names)-1 && newArray {
			idx = s.arrays[key]
			s.arrays[key]++
		} else if c, ok := s.arrays[key]; ok {
			idx = c - 1
		}
		segs = append(segs, seg{n, idx})
	}
	return segs
}

// keyValue records a key (and its implicit parent tables) then its value.
func (s *scanner) keyValue(ctx []seg, names []string, p pos, start int) {
	segs := append([]seg(nil), ctx...)
	for _, n := range names {
		segs = append(segs, seg{n, -1})
		s.record(segs, p)
	}
	s.skipSpace(false)
	if s.peek() == '=' {
		s.advance()
	}
	s.skipSpace(false)
	s.value(segs)
	if full := renderPath(segs, true); len(names) > 0 {
		if _, dup := s.x.stmt[full]; !dup {
			s.x.stmt[full] = [2]int{start, s.i}
		}
	}
}

// key reads a dotted key of bare and quoted parts.
func (s *scanner) key() []string {
	var names []string
	for {
		s.skipSpace(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			names = append(names, s.str())
		default:
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.advance()
			}
			if s.i == start {
				return names
			}
			names = append(names, s.src[start:s.i])
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return names
		}
		s.advance()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// str reads any TOML string and returns its (roughly) decoded text.
func (s *scanner) str() string {
	q := s.peek()
	multi := strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3))
	n := 1
	if multi {
		n = 3
	}
	for range n {
		s.advance()
	}
	var b strings.Builder
	for !s.eof() {
		c := s.peek()
		if c == '\\' && q == '"' {
			s.advance()
			if !s.eof() {
				b.WriteByte(s.peek())
				s.advance()
			}
			continue
		}
		if c == q && (!multi || strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3))) {
			for range n {
				s.advance()
			}
			// A multi-line string may end with up to two extra quotes.
			for multi && s.peek() == q {
				s.advance()
			}
			return b.String()
		}
		if c == '\n' && !multi {
			return b.String()
		}
		b.WriteByte(c)
		s.advance()
	}
	return b.String()
}

func (s *scanner) value(path []seg) {
	switch c := s.peek(); {
	case c == '"' || c == '\'':
		s.str()
	case c == '[':
		s.advance()
		for n := 0; ; n++ {
			s.skipSpace(true)
			if s.eof() || s.peek() == ']' {
				s.advance()
				return
			}
			elem := append(append([]seg(nil), path...), seg{"", n})
			start := s.i
			s.record(elem, s.here())
			s.value(elem)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			} else if s.i == start {
				return
			}
		}
	case c == '{':
		s.advance()
		for {
			s.skipSpace(false)
			if s.eof() || s.peek() == '}' {
				s.advance()
				return
			}
			start := s.i
			names := s.key()
			s.keyValue(path, names, pos{Line: s.line, Col: s.col - (s.i - start)}, start)
			s.skipSpace(false)
			if s.peek() == ',' {
				s.advance()
			} else if s.i == start {
				return
			}
		}
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.advance()
		}
	}
}
