package conf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads and parses the config file at path. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conf: cannot read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a TOML config, fills Name fields from map keys, parses
// Bind strings into Binds, applies defaults and validates. path is only
// used in messages ("" for a config that is not a file).
//
// On failure the error is an Errors listing every problem found, each
// with its position when known ("wharf.toml:3:1: frontend.edge.bind[1]:
// port 70000 out of range (1-65535)"). A TOML syntax error, or a type
// mismatch such as a string where an array belongs, stops decoding and is
// reported with only the bad sizes and durations found before it. On
// success, non-fatal findings are in Config.Warnings.
func Parse(data []byte, path string) (*Config, error) {
	main, errs, ok := decodeFile(data, path)
	if !ok {
		return nil, sortErrors(errs)
	}
	files := []*fileDecode{main}
	inc, incErrs := includes(main, path)
	errs = append(errs, incErrs...)
	for _, f := range inc {
		data, err := readInclude(f.name)
		if err != nil {
			errs = append(errs, f.errAt(main, "%v", err))
			continue
		}
		fd, ferrs, ok := decodeFile(data, f.name)
		errs = append(errs, ferrs...)
		if ok {
			files = append(files, fd)
		}
	}
	var typeErrs Errors
	for _, fd := range files {
		fv := &validator{c: fd.c, md: &fd.md, idx: fd.idx, file: fd.file}
		fv.tableTypes(fd.generic)
		fv.undecoded()
		errs = append(errs, fv.errs...)
		typeErrs = append(typeErrs, fd.typeErrs...)
	}
	c := main.c
	c.Path = path
	idx, mergeErrs := merge(files)
	errs = append(errs, mergeErrs...)
	for _, fd := range files[1:] {
		c.Included = append(c.Included, fd.file)
	}

	v := &validator{c: c, md: &main.md, idx: idx, file: path, errs: errs, fileRank: map[string]int{}}
	for i, fd := range files {
		v.fileRank[fd.file] = i
	}
	v.expandEnv() // env.go
	c.ApplyDefaults()
	v.validate()
	v.errs = append(dropConsequences(v.errs, typeErrs), typeErrs...)
	v.errs = append(dropConsequences(v.errs, v.envErrs), v.envErrs...)
	if len(v.errs) > 0 {
		return nil, v.sorted()
	}
	c.Warnings = v.warnings
	return c, nil
}

// fileDecode is one config file decoded, with what validation needs of it.
type fileDecode struct {
	file     string
	c        *Config
	md       toml.MetaData
	idx      *posIndex
	generic  map[string]any
	typeErrs Errors
}

// decodeFile decodes one config file. Its errors are the values and
// types it had to take out; with ok false, nothing more can be said
// about the file (a syntax error, or a type error decoding cannot get
// past) and the errors are all there is.
func decodeFile(data []byte, path string) (fd *fileDecode, errs Errors, ok bool) {
	// Decoding into a generic map first separates syntax errors (whose
	// position the toml parser knows exactly) from type errors in a
	// well-formed file.
	var generic map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&generic); err != nil {
		return nil, Errors{syntaxError(err, data, path)}, false
	}
	idx := indexPositions(string(data))

	// A bad size or duration, or a value of the wrong type, stops the toml
	// decoder. To still report every problem at once, each is recorded
	// and taken out of a copy of the input (a bad size or duration
	// blanked to 0, which means "default"; a wrong type's whole "key =
	// value" blanked to spaces, so the key is unset), and decoding
	// retried. Blanking keeps every offset, so positions stay right.
	var (
		c        *Config
		md       toml.MetaData
		err      error
		valErrs  Errors
		typeErrs Errors
		work     = data
	)
	for range 64 {
		c, md, err = decode(work)
		if err == nil {
			break
		}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			valErrs = append(valErrs, valueError(pe, data, path, idx))
			masked, ok := maskValue(work, pe.Position)
			if !ok {
				return nil, append(valErrs, typeErrs...), false
			}
			work = masked
			continue
		}
		te := decodeError(err, path, idx)
		masked, ok := maskStatement(work, data, idx, te.Path)
		if !ok {
			break
		}
		typeErrs = append(typeErrs, te)
		work = masked
	}
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) { // more bad values than the loop allows
			return nil, append(valErrs, typeErrs...), false
		}
		// A type error that could not be taken out: which values the
		// decoder reached before it depends on map order, so report the
		// sizes and durations from a full scan instead, so the same file
		// always gives the same errors.
		have := append(Errors{decodeError(err, path, idx)}, typeErrs...)
		return nil, append(scanValues(generic, path, idx, have), have...), false
	}
	return &fileDecode{file: path, c: c, md: md, idx: idx, generic: generic, typeErrs: typeErrs}, valErrs, true
}

// maskStatement blanks the "key = value" statement at path (spaces,
// newlines kept) in work, a copy of data with earlier values blanked. It
// reports false when the statement is unknown or the result no longer
// parses (a value inside an inline table, say).
func maskStatement(work, data []byte, idx *posIndex, path string) ([]byte, bool) {
	r, ok := idx.stmt[path]
	if !ok {
		return nil, false
	}
	bom := len(data) - len(bytes.TrimPrefix(data, []byte("\ufeff")))
	start, end := r[0]+bom, r[1]+bom
	if start < 0 || end > len(work) || start >= end {
		return nil, false
	}
	out := bytes.Clone(work)
	for i := start; i < end; i++ {
		if out[i] != '\n' {
			out[i] = ' '
		}
	}
	var generic map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(out)).Decode(&generic); err != nil {
		return nil, false
	}
	return out, true
}

// dropConsequences leaves out validation errors that only follow from a
// key taken out after a type error: about that key or below it, or about
// its table and naming it ("kafka sink needs brokers" after brokers had
// the wrong type). The type error says what to fix.
func dropConsequences(errs, typeErrs Errors) Errors {
	if len(typeErrs) == 0 {
		return errs
	}
	out := errs[:0]
next:
	for _, e := range errs {
		for _, t := range typeErrs {
			if e.Path == t.Path || strings.HasPrefix(e.Path, t.Path+".") || strings.HasPrefix(e.Path, t.Path+"[") {
				continue next
			}
			key := t.Path[len(parentPath(t.Path)):]
			key = strings.TrimLeft(key, ".")
			if e.Path == parentPath(t.Path) && key != "" && strings.Contains(e.Msg, key) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// fileConfig is Config as the decoder fills it: sink tables stay raw
// until their type says which options struct they decode into.
type fileConfig struct {
	Config
	Sinks map[string]toml.Primitive `toml:"sink"`
}

// decode decodes data into a Config: each [sink.NAME] table once into the
// keys every sink has and once into its type's options, all through one
// MetaData, so what neither knows is left undecoded.
func decode(data []byte) (*Config, toml.MetaData, error) {
	var fc fileConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&fc)
	if err != nil {
		return nil, md, err
	}
	c := &fc.Config
	c.Sinks = nil
	if fc.Sinks != nil {
		c.Sinks = make(map[string]*Sink, len(fc.Sinks))
	}
	for _, name := range sortedKeys(fc.Sinks) {
		prim := fc.Sinks[name]
		s := &Sink{}
		if err := md.PrimitiveDecode(prim, s); err != nil {
			return nil, md, err
		}
		if t := sinkType(s.Type); t != nil {
			s.Options = t.New()
			if err := md.PrimitiveDecode(prim, s.Options); err != nil {
				return nil, md, err
			}
		}
		c.Sinks[name] = s
	}
	return c, md, nil
}

func syntaxError(err error, data []byte, file string) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line, col := offsetPos(data, pe.Position)
		return &Error{File: file, Line: line, Col: col, Msg: "invalid TOML: " + pe.Message}
	}
	return &Error{File: file, Msg: "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: ")}
}

// decodeRE matches BurntSushi/toml's type errors, which are plain errors:
// `toml: line 3 (last key "frontend.edge.bind"): incompatible types: ...`.
var decodeRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

// valueError reports a value one of our UnmarshalText methods rejected.
func valueError(pe toml.ParseError, data []byte, file string, idx *posIndex) *Error {
	line, col := offsetPos(data, pe.Position)
	return &Error{File: file, Path: indexedPath(idx, pe.LastKey, line), Msg: pe.Message, Line: line, Col: col}
}

// offsetPos computes line and column from the byte offset: the toml
// library's own Col is one line off for errors at the start of a line.
func offsetPos(data []byte, p toml.Position) (line, col int) {
	if p.Start < 0 || p.Start > len(data) {
		return p.Line, p.Col
	}
	before := data[:p.Start]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = p.Start - bytes.LastIndexByte(before, '\n')
	return line, col
}

// maskValue replaces the value at p (with its quotes) by 0 and padding,
// so offsets, and so positions, stay the same. It reports false when it
// cannot tell where the value is.
func maskValue(data []byte, p toml.Position) ([]byte, bool) {
	start, end := p.Start, p.Start+p.Len
	if start <= 0 || end >= len(data) || p.Len <= 0 {
		return nil, false
	}
	if q := data[start-1]; (q == '"' || q == '\'') && data[end] == q {
		start, end = start-1, end+1
	}
	out := bytes.Clone(data)
	out[start] = '0'
	for i := start + 1; i < end; i++ {
		if out[i] != '\n' {
			out[i] = ' '
		}
	}
	return out, !bytes.Equal(out, data)
}

// decodeError reports a type mismatch, which stops decoding.
func decodeError(err error, file string, idx *posIndex) *Error {
	m := decodeRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	key, uerr := strconv.Unquote(m[2])
	if uerr != nil {
		key = m[2]
	}
	line, _ := strconv.Atoi(m[1])
	e := &Error{File: file, Path: indexedPath(idx, key, line), Msg: friendlyType(m[3]), Line: line}
	if p, ok := idx.lookup(e.Path); ok && (line == 0 || p.Line == line) {
		e.Line, e.Col = p.Line, p.Col
	}
	return e
}

// tableTypes catches `frontend = "x"` and `sink = 1`, which the toml
// library skips silently when decoding into a map.
func (v *validator) tableTypes(generic map[string]any) {
	for _, k := range []string{"frontend", "sink"} {
		val, ok := generic[k]
		if _, isMap := val.(map[string]any); ok && !isMap {
			v.errAt(k, "wrong type: got %s, want a table", tomlTypeName(fmtType(val)))
		}
	}
}

func fmtType(x any) string { return strings.ReplaceAll(fmt.Sprintf("%T", x), "interface {}", "any") }

// indexedPath finds the indexed form of a toml key string, preferring the
// occurrence on line.
func indexedPath(idx *posIndex, key string, line int) string {
	cands := idx.byKey[key]
	for _, c := range cands {
		if idx.at[c].Line == line {
			return c
		}
	}
	if len(cands) > 0 {
		return cands[0]
	}
	return key
}

var (
	incompatibleRE = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)
	mismatchRE     = regexp.MustCompile(`^type mismatch for .+: expected table but found (.+)$`)
)

// friendlyType rewrites the toml library's Go-flavoured type errors into
// TOML terms.
func friendlyType(msg string) string {
	if m := incompatibleRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: got %s, want %s", tomlTypeName(m[1]), tomlTypeName(m[2]))
	}
	if m := mismatchRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: got %s, want a table", tomlTypeName(m[1]))
	}
	return msg
}

func tomlTypeName(goType string) string {
	switch goType {
	case "string", "primitive (string-like)":
		return "a string"
	case "int64", "integer":
		return "an integer"
	case "float64", "float":
		return "a float"
	case "bool", "boolean":
		return "a boolean"
	case "[]any", "[]interface {}", "slice", "array":
		return "an array"
	case "map[string]any", "map[string]interface {}", "map", "struct":
		return "a table"
	case "[]map[string]any", "[]map[string]interface {}":
		return "an array of tables"
	case "time.Time", "toml.LocalDate", "toml.LocalDatetime", "toml.LocalTime":
		return "a date/time"
	}
	return goType
}

// undecoded reports every key the schema does not know, with a
// suggestion when a known key is close. A key of another sink type than
// the sink's says whose it is.
func (v *validator) undecoded() {
	seen := map[string]int{}
	var reported []string
	for _, k := range v.md.Undecoded() {
		ks := k.String()
		n := seen[ks]
		seen[ks]++
		path := ks
		if c := v.idx.byKey[ks]; n < len(c) {
			path = c[n]
		}
		// An unknown table makes all its keys unknown: report the table.
		skip := false
		for _, r := range reported {
			if strings.HasPrefix(path, r+".") || strings.HasPrefix(path, r+"[") {
				skip = true
			}
		}
		if skip {
			continue
		}
		if len(k) == 3 && k[0] == "sink" {
			s := v.c.Sinks[k[1]]
			if s == nil || sinkType(s.Type) == nil {
				continue // the missing or unknown type is the error
			}
			if owners := ownersOf(strings.ToLower(k[2])); len(owners) > 0 {
				reported = append(reported, path)
				v.errAt(path, "key %s does not apply to type %s (it is a %s key)", k[2], s.Type, strings.Join(owners, "/"))
				continue
			}
		}
		reported = append(reported, path)
		known := v.knownKeys(k)
		msg := "unknown key"
		if s := suggest(k[len(k)-1], known); s != "" {
			msg += "; did you mean " + s + "?"
		} else if len(known) > 0 {
			msg += " (known: " + strings.Join(known, ", ") + ")"
		}
		v.errAt(path, "%s", msg)
	}
}

// knownKeys lists the keys valid in the table that holds key k.
func (v *validator) knownKeys(k toml.Key) []string {
	switch {
	case len(k) == 1:
		return tomlKeys(reflect.TypeFor[Config]())
	case len(k) == 2 && k[0] == "admin":
		return tomlKeys(reflect.TypeFor[Admin]())
	case len(k) == 2 && k[0] == "global":
		return tomlKeys(reflect.TypeFor[Global]())
	case len(k) == 3 && k[0] == "frontend":
		return tomlKeys(reflect.TypeFor[Frontend]())
	case len(k) == 4 && k[0] == "frontend" && k[2] == "route":
		return tomlKeys(reflect.TypeFor[Route]())
	case len(k) == 3 && k[0] == "sink":
		keys := tomlKeys(reflect.TypeFor[Sink]())
		if s := v.c.Sinks[k[1]]; s != nil && s.Options != nil {
			keys = append(keys, tomlKeys(reflect.TypeOf(s.Options).Elem())...)
		}
		return keys
	case len(k) == 4 && k[0] == "sink" && k[2] == "buffer":
		return tomlKeys(reflect.TypeFor[Buffer]())
	}
	return nil
}

// tomlKeys lists the toml tag names of a struct type, in field order,
// with the keys of embedded structs in their place.
func tomlKeys(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, tomlKeys(f.Type)...)
			continue
		}
		if tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return out
}

// Suggest returns the known name closest to k when it is close enough to
// be a typo ("" otherwise), for "did you mean" in messages.
func Suggest(k string, known []string) string { return suggest(k, known) }

// suggest returns the known key closest to k when it is close enough to
// be a typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		d := editDistance(strings.ToLower(k), c)
		if d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance counts insertions, deletions, substitutions and swaps of
// neighbours (optimal string alignment), so "kafak" is 1 from "kafka".
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
