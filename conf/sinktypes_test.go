package conf_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"wharf/conf"
	"wharf/sinks/file"
	"wharf/sinks/kafka"

	// The goldens configure every sink type, so the test binary registers
	// them as cmd/wharf does. (conf cannot import them: they import conf.)
	_ "wharf/sinks/stdout"
	_ "wharf/sinks/syslog"
)

// ApplyDefaults twice changes nothing, and fills only the sink's own type.
func TestApplyDefaultsIdempotent(t *testing.T) {
	c := &conf.Config{Sinks: map[string]*conf.Sink{
		"f": {Type: "file", Options: &file.Config{Path: "x"}},
		"k": {Type: "kafka", Options: &kafka.Config{Key: "hostname"}},
		"s": {Type: "stdout"}, // options made by ApplyDefaults
	}}
	c.ApplyDefaults()
	once := *c.Sinks["f"].Options.(*file.Config)
	c.ApplyDefaults()
	if !reflect.DeepEqual(once, *c.Sinks["f"].Options.(*file.Config)) {
		t.Error("second ApplyDefaults changed the file sink")
	}
	if s := c.Sinks["f"]; s.Options.(*file.Config).FileMode != file.DefaultFileMode || s.Encoding != "json" {
		t.Errorf("file sink defaults wrong: %+v %+v", s, s.Options)
	}
	if s := c.Sinks["k"]; s.Options.(*kafka.Config).Balancer != "hash" || s.Encoding != "raw" || s.BatchSize != kafka.DefaultBatchSize {
		t.Errorf("kafka sink defaults wrong: %+v %+v", s, s.Options)
	}
	if s := c.Sinks["s"]; s.Options == nil || s.Encoding != "raw" {
		t.Errorf("stdout sink: %+v", s)
	}
}

// testOptions is a sink type conf has never heard of, as a RELP or HTTP
// sink will be: registering it is all it takes.
type testOptions struct {
	Window  int           `toml:"window"`
	Timeout conf.Duration `toml:"ack_timeout"`
	conf.ClientTLS
}

func (o *testOptions) ApplyDefaults() {
	if o.Window == 0 {
		o.Window = 128
	}
}

func (o *testOptions) Validate(c *conf.SinkCheck) {
	if o.Window > 1000 {
		c.Errorf("window", "window %d is more than 1000", o.Window)
	}
	o.ClientTLS.Validate(c)
}

func (o *testOptions) Describe(pr func(string, ...any)) { pr("window %d", o.Window) }

func TestNewSinkTypeNeedsNoConfChange(t *testing.T) {
	conf.RegisterSinkType("testtype", conf.SinkType{
		New:             func() conf.SinkOptions { return &testOptions{} },
		Encodings:       []string{"raw"},
		DefaultEncoding: "raw",
		Order:           100,
		Keys:            []conf.KeyDoc{{Key: "window", Type: "integer", Default: "128", Doc: "Frames in flight."}},
	})
	t.Cleanup(func() { conf.UnregisterSinkType("testtype") })
	const head = "[frontend.f]\nbind = [\"udp://127.0.0.1:0\"]\nsinks = [\"r\"]\n\n[sink.r]\ntype = \"testtype\"\n"
	c, err := conf.Parse([]byte(head+"window = 64\ntls_ca = \"\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Sinks["r"].Options.(*testOptions); o.Window != 64 || c.Sinks["r"].Encoding != "raw" {
		t.Errorf("decoded %+v, encoding %q", o, c.Sinks["r"].Encoding)
	}
	f := func(body, want string) {
		t.Helper()
		_, err := conf.Parse([]byte(head+body), "t.toml")
		var es conf.Errors
		if !errors.As(err, &es) || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", body, err, want)
		}
	}
	f("window = 5000\n", "t.toml:7:1: sink.r.window: window 5000 is more than 1000")
	f("windw = 5\n", "t.toml:7:1: sink.r.windw: unknown key; did you mean window?")
	f("window = \"many\"\n", "t.toml:7:1: sink.r.window: wrong type: got a string, want an integer")
	f("ack_timeout = \"soon\"\n", `t.toml:7:16: sink.r.ack_timeout: invalid duration "soon": want a Go duration such as "10ms", "5s" or "1m30s"`)
	f("topic = \"x\"\n", "t.toml:7:1: sink.r.topic: key topic does not apply to type testtype (it is a kafka key)")
	f("encoding = \"json\"\n", `t.toml:7:1: sink.r.encoding: encoding "json" is not one of raw`)
	if ref := conf.Reference(); !strings.Contains(ref, "## [sink.*name*] type = \"testtype\"") || !strings.Contains(ref, "| `window` | integer | 128 | Frames in flight. |") {
		t.Error("the reference lacks the new type's section")
	}
}
