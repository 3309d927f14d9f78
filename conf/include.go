package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// This file reads `include = ["conf.d/*.toml"]`: more files whose
// frontends, sinks and backends join the main file's, as rsyslog's
// $IncludeConfig and nginx's include do. Each included file is decoded
// and checked for unknown keys and wrong types on its own, so its errors
// name it ("conf.d/kafka.toml:3:1: sink.k.topic: ..."); the merged config
// is then validated as one. Paths are relative to the main file's
// directory; patterns match in name order; a pattern that matches
// nothing is fine (an empty conf.d), a plain name that does not exist is
// not. Only the main file may include, and only it may set [admin],
// [global]: those are one per process.

// includeFile is one file to read, with the include entry naming it.
type includeFile struct {
	name string
	key  string // "include[1]"
}

// errAt is an error about the include entry, positioned in the main file.
func (f includeFile) errAt(main *fileDecode, format string, args ...any) *Error {
	e := &Error{File: main.file, Path: f.key, Msg: fmt.Sprintf(format, args...)}
	if p, ok := main.idx.lookup(f.key); ok {
		e.Line, e.Col = p.Line, p.Col
	}
	return e
}

// includes expands the main file's include patterns into files, each
// once, in order.
func includes(main *fileDecode, path string) ([]includeFile, Errors) {
	var (
		out  []includeFile
		errs Errors
		seen = map[string]bool{filepath.Clean(path): true}
	)
	dir := filepath.Dir(path)
	for i, pat := range main.c.Include {
		f := includeFile{key: idx("include", i)}
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(dir, pat)
		}
		matches, err := filepath.Glob(pat)
		if err != nil {
			errs = append(errs, f.errAt(main, "bad pattern %q: %v", main.c.Include[i], err))
			continue
		}
		if len(matches) == 0 && !strings.ContainsAny(main.c.Include[i], "*?[") {
			errs = append(errs, f.errAt(main, "%s does not exist", pat))
			continue
		}
		sort.Strings(matches)
		for _, m := range matches {
			if seen[filepath.Clean(m)] {
				continue
			}
			seen[filepath.Clean(m)] = true
			f.name = m
			out = append(out, f)
		}
	}
	return out, errs
}

// merge adds the included files' frontends, sinks and backends to the
// main file's config and their positions to one index (each naming its
// file). A name defined twice, and a table only the main file may hold,
// are errors in the file that repeats it.
func merge(files []*fileDecode) (*posIndex, Errors) {
	main := files[0]
	idx := main.idx
	var errs Errors
	origin := map[string]string{} // "sink.x" -> file that defined it
	note := func(fd *fileDecode, p string) bool {
		if first, dup := origin[p]; dup {
			e := &Error{File: fd.file, Path: p, Msg: fmt.Sprintf("%s is also defined in %s; names are shared by all included files", p, first)}
			if pp, ok := fd.idx.lookup(p); ok {
				e.Line, e.Col = pp.Line, pp.Col
			}
			errs = append(errs, e)
			return false
		}
		origin[p] = fd.file
		return true
	}
	for _, fd := range files {
		for _, name := range sortedKeys(fd.c.Frontends) {
			if p := join("frontend", name); note(fd, p) && fd != main {
				if main.c.Frontends == nil {
					main.c.Frontends = map[string]*Frontend{}
				}
				main.c.Frontends[name] = fd.c.Frontends[name]
			}
		}
		for _, name := range sortedKeys(fd.c.Sinks) {
			if p := join("sink", name); note(fd, p) && fd != main {
				if main.c.Sinks == nil {
					main.c.Sinks = map[string]*Sink{}
				}
				main.c.Sinks[name] = fd.c.Sinks[name]
			}
		}
		for _, name := range sortedKeys(fd.c.Backends) {
			if p := join("backend", name); note(fd, p) && fd != main {
				if main.c.Backends == nil {
					main.c.Backends = map[string]*Backend{}
				}
				main.c.Backends[name] = fd.c.Backends[name]
			}
		}
		if fd == main {
			continue
		}
		for _, key := range []string{"admin", "global", "include"} {
			if fd.md.IsDefined(key) {
				e := &Error{File: fd.file, Path: key, Msg: fmt.Sprintf("%s belongs in the main config file (%s), not in an included one", key, main.file)}
				if pp, ok := fd.idx.lookup(key); ok {
					e.Line, e.Col = pp.Line, pp.Col
				}
				errs = append(errs, e)
			}
		}
		for p, pp := range fd.idx.at {
			if _, have := idx.at[p]; !have {
				pp.File = fd.file
				idx.at[p] = pp
			}
		}
		for k, paths := range fd.idx.byKey {
			idx.byKey[k] = append(idx.byKey[k], paths...)
		}
	}
	return idx, errs
}

// maxIncludeSize bounds an included file: a config is kilobytes; this
// stops a pattern that matches a log or a device from being read whole.
const maxIncludeSize = 16 << 20

// readInclude reads an included file, which must be a regular file.
func readInclude(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read %s: %v", name, errors.Unwrap(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", name)
	case fi.Size() > maxIncludeSize:
		return nil, fmt.Errorf("%s is %d bytes; a config file is at most %d", name, fi.Size(), maxIncludeSize)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", name, errors.Unwrap(err))
	}
	return data, nil
}
