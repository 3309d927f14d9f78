package conf

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files and docs/config.md")

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./conf -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./conf -update rewrites it)\n--- got:\n%s\n--- want:\n%s", file, got, want)
	}
}

func TestGoldenValid(t *testing.T) {
	goldenEnv(t)
	files, _ := filepath.Glob("testdata/valid/*.toml")
	if len(files) == 0 {
		t.Fatal("no testdata/valid cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var b bytes.Buffer
			c.Describe(&b)
			golden(t, strings.TrimSuffix(f, ".toml")+".golden", b.String())
		})
	}
}

// goldenEnv is the environment the goldens' ${VAR}s see.
func goldenEnv(t *testing.T) {
	t.Setenv("WHARF_TEST_HOST", "127.0.0.1")
	t.Setenv("WHARF_TEST_TOPIC", "logs")
	t.Setenv("WHARF_TEST_EMPTY", "")
	t.Setenv("WHARF_TEST_DOLLAR", "pa$$word")
}

func TestGoldenInvalid(t *testing.T) {
	goldenEnv(t)
	files, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(files) == 0 {
		t.Fatal("no testdata/invalid cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err == nil {
				var b bytes.Buffer
				c.Describe(&b)
				t.Fatalf("Load succeeded, want errors:\n%s", b.String())
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is %T, want conf.Errors: %v", err, err)
			}
			golden(t, strings.TrimSuffix(f, ".toml")+".golden", err.Error()+"\n")
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.toml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want an error wrapping os.ErrNotExist", err)
	}
}

// The example docs/config.md shows must stay a valid config with a golden.
func TestReferenceExample(t *testing.T) {
	const file = "testdata/valid/edge-relay.toml"
	golden(t, file, ExampleConfig)
}

func TestReferenceDoc(t *testing.T) {
	golden(t, "../docs/config.md", Reference())
}

// Every schema key must be documented in the reference, under its table;
// each sink type's section documents exactly its options' keys.
func TestReferenceCoversSchema(t *testing.T) {
	check := func(what string, documented []KeyDoc, typ reflect.Type) {
		t.Helper()
		doc := map[string]bool{}
		for _, k := range documented {
			if doc[k.Key] {
				t.Errorf("%s: %s documented twice", what, k.Key)
			}
			doc[k.Key] = true
		}
		for _, k := range tomlKeys(typ) {
			if !doc[k] {
				t.Errorf("%s.%s is not in the reference", what, k)
			}
			delete(doc, k)
		}
		for k := range doc {
			t.Errorf("%s.%s is documented but not in the schema", what, k)
		}
	}
	byTable := map[string][]KeyDoc{}
	for _, s := range sections() {
		if strings.HasPrefix(s.Title, "[sink.NAME] type = ") {
			continue
		}
		byTable[s.Table] = append(byTable[s.Table], s.Keys...)
	}
	for table, typ := range map[string]reflect.Type{
		"admin":               reflect.TypeFor[Admin](),
		"global":              reflect.TypeFor[Global](),
		"frontend.NAME.route": reflect.TypeFor[Route](),
		"sink.NAME":           reflect.TypeFor[Sink](),
		"sink.NAME.buffer":    reflect.TypeFor[Buffer](),
	} {
		check(table, byTable[table], typ)
	}
	if len(SinkTypes()) == 0 {
		t.Fatal("no sink types registered")
	}
	for _, name := range SinkTypes() {
		st := sinkType(name)
		check("sink type "+name, st.Keys, reflect.TypeOf(st.New()).Elem())
	}
}

func TestParseSize(t *testing.T) {
	f := func(in string, want Size, wantErr string) {
		t.Helper()
		got, err := ParseSize(in)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Errorf("ParseSize(%q) error = %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	f("0", 0, "")
	f("512", 512, "")
	f("512B", 512, "")
	f("64KiB", 65536, "")
	f("64 KiB", 65536, "")
	f("64KB", 64000, "")
	f("1MB", 1000000, "")
	f("1MiB", 1<<20, "")
	f("2GB", 2000000000, "")
	f("2GiB", 2<<30, "")
	f(" 8KiB ", 8192, "")
	f("64KB2", 0, `invalid size "64KB2": unknown unit "KB2"; `+sizeHint)
	f("64kb", 0, `invalid size "64kb": unknown unit "kb"; `+sizeHint)
	f("64mib", 0, `invalid size "64mib": unknown unit "mib"; `+sizeHint)
	f("KiB", 0, `invalid size "KiB": `+sizeHint)
	f("", 0, `invalid size "": `+sizeHint)
	f("-1", 0, `invalid size "-1": must not be negative`)
	f("1.5MiB", 0, `invalid size "1.5MiB": unknown unit ".5MiB"; `+sizeHint)
	f("99999999999999999999", 0, `invalid size "99999999999999999999": number too large`)
	f("9999999999GiB", 0, `invalid size "9999999999GiB": too large`)
}

func TestSizeString(t *testing.T) {
	f := func(in Size, want string) {
		t.Helper()
		if got := in.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(in), got, want)
		}
		if back, err := ParseSize(want); err != nil || back != in {
			t.Errorf("ParseSize(%q) = %d, %v; want round trip to %d", want, back, err, int64(in))
		}
	}
	f(0, "0B")
	f(100, "100B")
	f(65536, "64KiB")
	f(64000, "64KB")
	f(1<<20, "1MiB")
	f(3*GiB, "3GiB")
	f(1500, "1500B")
	f(2*GB, "2GB")
}

func TestDuration(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		var d Duration
		err := d.UnmarshalText([]byte(in))
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Errorf("Duration(%q) error = %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("Duration(%q): %v", in, err)
			return
		}
		if txt, _ := d.MarshalText(); string(txt) != want {
			t.Errorf("Duration(%q) = %q, want %q", in, txt, want)
		}
	}
	f("10ms", "10ms", "")
	f("5s", "5s", "")
	f("1m30s", "1m30s", "")
	f("0", "0s", "")
	f("10", "", `invalid duration "10": want a Go duration such as "10ms", "5s" or "1m30s"`)
	f("10 s", "", `invalid duration "10 s": want a Go duration such as "10ms", "5s" or "1m30s"`)
	f("-1s", "", `invalid duration "-1s": must not be negative`)
	f("", "", `invalid duration "": want a Go duration such as "10ms", "5s" or "1m30s"`)
}

// Sizes decode from bare TOML integers as well as strings.
func TestSizeFromTOMLInteger(t *testing.T) {
	c, err := Parse([]byte(`
[frontend.a]
bind = ["udp://127.0.0.1:0"]
max_message_size = 8192
sinks = ["out"]
[sink.out]
type = "stdout"
queue_bytes = "1MB"
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Frontends["a"].MaxMessageSize; got != 8192 {
		t.Errorf("max_message_size = %d, want 8192", got)
	}
	if got := c.Sinks["out"].QueueBytes; got != 1000000 {
		t.Errorf("queue_bytes = %d, want 1000000", got)
	}
}

func TestParseFacility(t *testing.T) {
	f := func(in string, want int, wantErr bool) {
		t.Helper()
		got, err := ParseFacility(in)
		if (err != nil) != wantErr || got != want {
			t.Errorf("ParseFacility(%q) = %d, %v; want %d, err %v", in, got, err, want, wantErr)
		}
	}
	f("kern", 0, false)
	f("auth", 4, false)
	f("authpriv", 10, false)
	f("solaris-cron", 15, false)
	f("clock", 15, false)
	f("local0", 16, false)
	f("LOCAL7", 23, false)
	f("0", 0, false)
	f("23", 23, false)
	f("24", 0, true)
	f("-1", 0, true)
	f("local8", 0, true)
	f("", 0, true)
}

func TestParseSeverityRange(t *testing.T) {
	f := func(in string, lo, hi int, wantErr bool) {
		t.Helper()
		gl, gh, err := ParseSeverityRange(in)
		if (err != nil) != wantErr || gl != lo || gh != hi {
			t.Errorf("ParseSeverityRange(%q) = %d, %d, %v; want %d, %d, err %v", in, gl, gh, err, lo, hi, wantErr)
		}
	}
	f("emerg..warning", 0, 4, false)
	f("warning..emerg", 0, 4, false)
	f("warning", 4, 4, false)
	f("warn", 4, 4, false)
	f("err", 3, 3, false)
	f("error", 3, 3, false)
	f("0..7", 0, 7, false)
	f("info..debug", 6, 7, false)
	f("Notice", 5, 5, false)
	f("8", 0, 0, true)
	f("emerg..", 0, 0, true)
	f("..debug", 0, 0, true)
	f("loud", 0, 0, true)
	f("", 0, 0, true)
}

func TestParseBind(t *testing.T) {
	f := func(in string, want Bind, wantErr string) {
		t.Helper()
		got, err := ParseBind(in)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Errorf("ParseBind(%q) error = %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("ParseBind(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	f("udp://0.0.0.0:514", Bind{"udp", "0.0.0.0", 514, "0.0.0.0:514"}, "")
	f("tcp://[::1]:6514", Bind{"tcp", "::1", 6514, "[::1]:6514"}, "")
	f("tcp://localhost:0", Bind{"tcp", "localhost", 0, "localhost:0"}, "")
	f("tcp://::1:514", Bind{}, `"::1:514": too many colons; write IPv6 addresses in brackets, e.g. [::1]:514`)
	f("tcp://127.0.0.1:70000", Bind{}, "port 70000 out of range (1-65535)")
	f("tcp://127.0.0.1", Bind{}, `"127.0.0.1": missing port in address; want host:port`)
	f("tcp://:514", Bind{}, `":514": empty host; write 0.0.0.0 or [::] for every address, 127.0.0.1 for loopback`)
	f("tcp://127.0.0.1:syslog", Bind{}, `"127.0.0.1:syslog": port "syslog" is not a number`)
	f("tls://127.0.0.1:6514", Bind{"tls", "127.0.0.1", 6514, "127.0.0.1:6514"}, "")
	f("http://127.0.0.1:80", Bind{}, `unknown scheme "http" in "http://127.0.0.1:80" (use udp, tcp, tls, relp or relp+tls)`)
	f("127.0.0.1:514", Bind{}, `"127.0.0.1:514": want scheme://host:port, e.g. udp://0.0.0.0:514`)
}

// A config built in code is validated the same way, without positions.
func TestValidateInCode(t *testing.T) {
	c := &Config{
		Frontends: map[string]*Frontend{"a": {Bind: []string{"udp://127.0.0.1:0"}, Sinks: []string{"out"}}},
		Sinks:     map[string]*Sink{"out": {Type: "stdout", QueueSize: 10, BatchSize: 20}},
	}
	c.ApplyDefaults()
	err := c.Validate()
	want := "sink.out.batch_size: batch_size 20 is larger than queue_size 10; a batch could never fill"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want %q", err, want)
	}
	c.Sinks["out"].BatchSize = 10
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if got := c.Frontends["a"].Binds; len(got) != 1 || got[0].Addr != "127.0.0.1:0" || c.Frontends["a"].Name != "a" {
		t.Errorf("Validate did not fill Name/Binds: %+v", c.Frontends["a"])
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.toml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint16(len(data)/2))
	}
	// /etc/hosts still answers; anything else fails fast without DNS.
	resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS while fuzzing")
	}}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		// Parse must never panic, whole or cut short (a truncated write
		// of the config file), and must return a config or errors.
		n := min(int(cut), len(data))
		for _, in := range [][]byte{data, data[:n], data[n:]} {
			c, err := Parse(in, "fuzz.toml")
			if (c == nil) == (err == nil) {
				t.Fatalf("Parse returned config %v and error %v", c != nil, err)
			}
			if c != nil {
				c.Describe(&bytes.Buffer{})
			}
		}
	})
}

// A buffer directory under one this user cannot write is found (Parse
// warns: wharf run may run as another user).
func TestBufferDirNotWritable(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root may write anywhere")
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	err := checkBufferDir(filepath.Join(ro, "a", "b"))
	if !errors.Is(err, errNotWritable) || !strings.Contains(err.Error(), ro+" is not writable by this user") {
		t.Errorf("checkBufferDir under a read-only dir: %v", err)
	}
	if err := checkBufferDir(filepath.Join(t.TempDir(), "new", "deeper")); err != nil {
		t.Errorf("checkBufferDir of a creatable dir: %v", err)
	}
}

// A buffer directory no user could create is an error, not a warning:
// under /proc (a pseudo filesystem, root or not), or on a read-only
// mount (tested where this test may mount a read-only tmpfs: as root).
// wharf check passed both before, and wharf run then exited 2.
func TestBufferDirUnusableFS(t *testing.T) {
	err := checkBufferDir("/proc/wharfbuf")
	if err == nil || errors.Is(err, errNotWritable) || !strings.Contains(err.Error(), "proc filesystem") {
		t.Errorf("checkBufferDir(/proc/wharfbuf) = %v, want an error naming the proc filesystem", err)
	}
	if os.Getuid() != 0 {
		return
	}
	ro := t.TempDir()
	if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
		t.Logf("no read-only mount to test with: %v", err)
		return
	}
	defer syscall.Unmount(ro, 0)
	err = checkBufferDir(filepath.Join(ro, "buf"))
	if err == nil || errors.Is(err, errNotWritable) || !strings.Contains(err.Error(), "read-only filesystem") {
		t.Errorf("checkBufferDir on a read-only mount = %v, want an error naming it", err)
	}
}

// CheckFileDir finds a file wharf run could not create because a parent
// is a regular file ("mkdir /etc/passwd: not a directory" at start) or on
// a pseudo filesystem, walking up to the first ancestor that exists, and
// creates nothing. A templated file sink path passes its fixed directory.
func TestCheckFileDir(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		file, dir, want string // want "" for no error
	}{
		{"testdata/tls/token/x.log", "testdata/tls/token", "testdata/tls/token/x.log cannot be created: testdata/tls/token is not a directory"},
		{"testdata/tls/token/a/b/x.log", "testdata/tls/token/a/b", "testdata/tls/token is not a directory"},
		{"testdata/tls/token/{hostname}/x.log", "testdata/tls/token", "testdata/tls/token/{hostname}/x.log cannot be created: testdata/tls/token is not a directory"},
		{"/proc/wharf-x/x.log", "/proc/wharf-x", "/proc is on the proc filesystem"},
		{"testdata/tls/token", "testdata/tls", ""}, // exists: CheckPath's business
		{tmp + "/new/deeper/x.log", tmp + "/new/deeper", ""},
		{tmp + "/{hostname}/x.log", tmp, ""},
	} {
		err := CheckFileDir(tc.file, tc.dir)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckFileDir(%q, %q) = %v, want nil", tc.file, tc.dir, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckFileDir(%q, %q) = %v, want %q", tc.file, tc.dir, err, tc.want)
		}
	}
	if _, err := os.Stat(tmp + "/new"); err == nil {
		t.Error("CheckFileDir created a directory")
	}
}

// A duration of 0 means the default everywhere, so no key's text may
// promise that 0 turns it off unless 0 is its default (client_timeout:
// "`0s` (off)"). frame_timeout said "0 disables" and 0 gave 1m.
func TestReferenceZeroIsDefault(t *testing.T) {
	off := regexp.MustCompile(`\b0s? (disables|turns\b[^.;]* off|means no|switches\b[^.;]* off|is off)`)
	keys := map[string]KeyDoc{}
	for _, s := range sections() {
		for _, k := range s.Keys {
			keys[s.Table+"."+k.Key] = k
		}
	}
	for _, name := range SinkTypes() {
		for _, k := range sinkType(name).Keys {
			keys["sink type "+name+"."+k.Key] = k
		}
	}
	for p, k := range keys {
		if off.MatchString(k.Doc) && !strings.HasPrefix(strings.Trim(k.Default, "`"), "0") {
			t.Errorf("%s (default %s) says %q, but 0 means the default", p, k.Default, off.FindString(k.Doc))
		}
	}

	c, err := Parse([]byte(`
[frontend.a]
bind = ["tcp://127.0.0.1:0"]
frame_timeout = "0s"
sinks = ["out"]
[frontend.b]
bind = ["tcp://127.0.0.1:0"]
frame_timeout = "1h"
sinks = ["out"]
[sink.out]
type = "stdout"
`), "z.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Frontends["a"].FrameTimeout.Duration; got != DefaultFrameTimeout {
		t.Errorf("frame_timeout = \"0s\" gave %s, want the default %s", got, DefaultFrameTimeout)
	}
	if got := c.Frontends["b"].FrameTimeout.Duration; got != time.Hour {
		t.Errorf("frame_timeout = \"1h\" gave %s", got)
	}
}
