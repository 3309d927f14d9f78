package conf

import "testing"

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"HOST": "10.0.0.1", "EMPTY": "", "D": "a$b"}
	lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	defer func() { lookupEnv = osLookupEnv }()
	f := func(in, want, wantErr string) {
		t.Helper()
		got, err := expandEnv(in)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Errorf("expandEnv(%q) = %q, %v; want error %q", in, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f("plain", "plain", "")
	f("pa$$word $1 $HOST", "pa$$word $1 $HOST", "") // only ${ expands
	f("${HOST}:514", "10.0.0.1:514", "")
	f("tcp://${HOST}:${PORT:-514}", "tcp://10.0.0.1:514", "")
	f("${EMPTY:-x}", "x", "")
	f("${EMPTY}", "", "")
	f("${D}", "a$b", "")
	f("$${HOST}", "${HOST}", "")
	f("${HOST:-}", "10.0.0.1", "")
	f("${NOPE}", "", "environment variable NOPE is not set (write ${NOPE:-default} to give a default)")
	f("${HOST", "", `"${HOST": ${ without a closing } (write $${ for a literal ${)`)
	f("${}", "", `${}: "" is not an environment variable name (letters, digits, _)`)
	f("${1X}", "", `${1X}: "1X" is not an environment variable name (letters, digits, _)`)
}
