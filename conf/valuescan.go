package conf

import (
	"reflect"
	"strings"
)

var (
	sizeType     = reflect.TypeFor[Size]()
	durationType = reflect.TypeFor[Duration]()
	rateType     = reflect.TypeFor[Rate]()

	sinkStructType = reflect.TypeFor[Sink]()
)

// scanValues checks every size, duration and rate in the generic decode of a
// file against the schema. Parse uses it when a type mismatch stopped the
// typed decoder early: which values the decoder reached before stopping
// depends on map order, so without this pass the errors reported would
// vary from run to run. Errors whose path is already in have are skipped.
func scanValues(generic map[string]any, file string, pidx *posIndex, have Errors) Errors {
	seen := map[string]bool{}
	for _, e := range have {
		seen[e.Path] = true
	}
	var out Errors
	var walk func(v any, t reflect.Type, path string)
	walk = func(v any, t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t {
		case sizeType, durationType, rateType:
			u := reflect.New(t).Interface().(interface{ UnmarshalTOML(any) error })
			if err := u.UnmarshalTOML(v); err != nil && !seen[path] {
				e := &Error{File: file, Path: path, Msg: err.Error()}
				if p, ok := pidx.lookup(path); ok {
					e.Line, e.Col = p.Line, p.Col
				}
				out = append(out, e)
			}
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
				if f.Anonymous && name == "" {
					walk(v, f.Type, path) // embedded: its keys are this table's
					continue
				}
				if name == "" || name == "-" {
					continue
				}
				if fv, ok := m[name]; ok {
					walk(fv, f.Type, joinPath(path, name))
				}
			}
			// A sink's table also holds its type's keys.
			if t == sinkStructType {
				typ, _ := m["type"].(string)
				if st := sinkType(typ); st != nil {
					walk(v, reflect.TypeOf(st.New()), path)
				}
			}
		case reflect.Map:
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			for k, mv := range m {
				walk(mv, t.Elem(), joinPath(path, k))
			}
		case reflect.Slice:
			switch s := v.(type) {
			case []map[string]any:
				for i, e := range s {
					walk(e, t.Elem(), idx(path, i))
				}
			case []any:
				for i, e := range s {
					walk(e, t.Elem(), idx(path, i))
				}
			}
		}
	}
	walk(generic, reflect.TypeFor[Config](), "")
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
