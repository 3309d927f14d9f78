package conf

import (
	"fmt"
	"os"
	"reflect"
	"strings"
)

// This file expands environment variables in string values: "${NAME}"
// and "${NAME:-default}" (the default when NAME is unset or empty, as in
// a shell). "$${" is a literal "${"; any other "$" is left alone, so
// passwords with "$" in them need no escaping. Expansion runs after
// decoding, so an error names the key and its position, and before
// defaults and validation, which see the expanded values. Sizes,
// durations and other typed values are not expanded.

// lookupEnv is os.LookupEnv; tests swap it.
var lookupEnv = osLookupEnv

// osLookupEnv is the real lookup.
var osLookupEnv = os.LookupEnv

// expandEnv expands s. It returns an error for an unset variable without
// a default, an empty or bad name, or a "${" without "}".
func expandEnv(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // "$${": a literal "${"
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q: ${ without a closing } (write $${ for a literal ${)", s[i:])
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("${%s}: %q is not an environment variable name (letters, digits, _)", expr, name)
		}
		val, set := lookupEnv(name)
		switch {
		case hasDef && val == "":
			val = def
		case !set:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func validEnvName(n string) bool {
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// expandEnv expands every string value of the config in place, sink
// options included, reporting each failure at its key.
func (v *validator) expandEnv() {
	v.expandValue(reflect.ValueOf(v.c).Elem(), "")
}

func (v *validator) expandValue(rv reflect.Value, path string) {
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !rv.IsNil() {
			v.expandValue(rv.Elem(), path)
		}
	case reflect.String:
		out, err := expandEnv(rv.String())
		if err != nil {
			v.envErr(path, err)
			return
		}
		if rv.CanSet() {
			rv.SetString(out)
		}
	case reflect.Slice:
		for i := range rv.Len() {
			v.expandValue(rv.Index(i), idx(path, i))
		}
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return
		}
		for _, k := range rv.MapKeys() {
			e := rv.MapIndex(k)
			if e.Kind() == reflect.String { // map values are not addressable
				out, err := expandEnv(e.String())
				if err != nil {
					v.envErr(joinPath(path, quoteKey(k.String())), err)
					continue
				}
				rv.SetMapIndex(k, reflect.ValueOf(out).Convert(e.Type()))
				continue
			}
			v.expandValue(e, joinPath(path, quoteKey(k.String())))
		}
	case reflect.Struct:
		t := rv.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case f.Anonymous && name == "":
				v.expandValue(rv.Field(i), path) // embedded: same table
			case f.Type == sinkOptionsType:
				v.expandValue(rv.Field(i), path) // a sink type's keys
			case name == "" || name == "-":
			default:
				v.expandValue(rv.Field(i), joinPath(path, name))
			}
		}
	}
}

var sinkOptionsType = reflect.TypeFor[SinkOptions]()

// envErr reports a failed expansion. The value stays as written, and
// validation errors about it are dropped (Parse): the variable is what
// to fix.
func (v *validator) envErr(path string, err error) {
	e := &Error{File: v.file, Path: path, Msg: err.Error()}
	if p, ok := v.idx.lookup(path); ok {
		e.Line, e.Col = p.Line, p.Col
		if p.File != "" {
			e.File = p.File
		}
	}
	v.envErrs = append(v.envErrs, e)
}
