package file

import (
	"fmt"
	"strings"

	"wharf/conf"
)

// PathFields are the placeholders a file sink path may hold, with what
// each expands to. A value that comes from the sender (hostname,
// app_name) is made safe for a path: bytes other than letters, digits and
// ".-_:@" become '_', a leading '.' becomes '_' (no "." or ".."), at most
// 64 bytes.
var PathFields = []struct{ Name, Doc string }{
	{"hostname", "HOSTNAME, or the sender's IP when the message has none"},
	{"source_ip", "the sender's IP address"},
	{"app_name", "APP-NAME (RFC3164: the tag), `-` when absent"},
	{"facility", "facility name (`local0`), `-` when unknown"},
	{"severity", "severity name (`err`), `-` when unknown"},
	{"frontend", "the frontend's name"},
	{"date", "receive date `YYYY-MM-DD`"},
	{"year", "receive year `YYYY`"},
	{"month", "receive month `MM`"},
	{"day", "receive day `DD`"},
	{"hour", "receive hour `HH` (00-23)"},
}

// PathPart is a piece of a parsed file sink path: literal text, or a
// placeholder Field (one of PathFields' names) when Field is set.
type PathPart struct {
	Literal string
	Field   string
}

// ParsePathTemplate splits a file sink path into literal text and
// {placeholders}. A path without '{' is one literal part. "{{" and "}}"
// stand for literal braces.
func ParsePathTemplate(p string) ([]PathPart, error) {
	var parts []PathPart
	var lit strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '{' && i+1 < len(p) && p[i+1] == '{', c == '}' && i+1 < len(p) && p[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '{':
			end := strings.IndexByte(p[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("path %q: unclosed {", p)
			}
			name := p[i+1 : i+end]
			if !isPathField(name) {
				if s := conf.Suggest(name, pathFieldNames()); s != "" {
					return nil, fmt.Errorf("path %q: unknown placeholder {%s}; did you mean {%s}?", p, name, s)
				}
				return nil, fmt.Errorf("path %q: unknown placeholder {%s} (known: %s)", p, name, strings.Join(pathFieldNames(), ", "))
			}
			if lit.Len() > 0 {
				parts = append(parts, PathPart{Literal: lit.String()})
				lit.Reset()
			}
			parts = append(parts, PathPart{Field: name})
			i += end
		case c == '}':
			return nil, fmt.Errorf("path %q: } without { (write }} for a literal brace)", p)
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		parts = append(parts, PathPart{Literal: lit.String()})
	}
	return parts, nil
}

// IsPathTemplate reports whether parts hold a placeholder.
func IsPathTemplate(parts []PathPart) bool {
	for _, pp := range parts {
		if pp.Field != "" {
			return true
		}
	}
	return false
}

// StaticDir is the directory part of a templated path before its first
// placeholder ("/var/log/remote" for "/var/log/remote/{hostname}/x.log").
func StaticDir(parts []PathPart) string {
	if len(parts) == 0 || parts[0].Field != "" {
		return "."
	}
	lit := parts[0].Literal
	if !IsPathTemplate(parts) {
		return lit
	}
	i := strings.LastIndexByte(lit, '/')
	switch {
	case i < 0:
		return "."
	case i == 0:
		return "/"
	}
	return lit[:i]
}

func isPathField(name string) bool {
	for _, f := range PathFields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func pathFieldNames() []string {
	names := make([]string, len(PathFields))
	for i, f := range PathFields {
		names[i] = f.Name
	}
	return names
}

// pathFieldsDoc lists the file sink path placeholders for the reference.
func pathFieldsDoc() string {
	var b strings.Builder
	b.WriteString("Placeholders:")
	for i, f := range PathFields {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " `{%s}` %s", f.Name, f.Doc)
	}
	b.WriteString(". Values from the sender are made safe for a path: bytes other than letters, digits and `.-_:@` become `_`, a leading `.` becomes `_` (no `..`), at most 64 bytes. Dates are wharf's local time (`TZ`).")
	return b.String()
}
