package file

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"wharf/conf"
	"wharf/internal/logfile"
	"wharf/sinks"
)

func init() { sinks.Register("file", configType, New) }

// Defaults of a file sink's keys, each with its reason.
const (
	// DefaultEncoding is JSON lines: files are read by people and
	// shippers, and parsed fields are what they want.
	DefaultEncoding = "json"
	// DefaultFileMode 0640: owner writes, the group (e.g. adm) reads, logs
	// are not world-readable.
	DefaultFileMode = "0640"
	// DefaultMaxOpenFiles bounds the files a templated file sink
	// ({hostname}, {date}...) keeps open: 256 covers a few hundred active
	// senders without reopening per batch, and stays far below the
	// descriptor limit (LimitNOFILE=65536 in the systemd unit) that
	// listeners and other sinks share. rsyslog's dynaFileCacheSize is 10
	// by default, which thrashes at any real number of hosts.
	DefaultMaxOpenFiles = 256
	// DefaultFileIdleClose closes a templated file sink's file that was
	// not written for this long: a {date} file is done after midnight, a
	// host that went away does not hold a descriptor. Not a setting: five
	// minutes is long next to batch intervals and short next to a day.
	DefaultFileIdleClose = 5 * time.Minute
	// MaxMaxOpenFiles caps max_open_files well inside that limit.
	MaxMaxOpenFiles = 16384
)

// Config is a file sink's own keys in [sink.NAME] (type = "file").
type Config struct {
	// Path of the output file (appended to; reopened on SIGHUP).
	Path string `toml:"path"`
	// FileMode is the permission for a new file, as an octal string.
	FileMode string `toml:"file_mode"`
	// MaxOpenFiles bounds the files a sink whose path holds placeholders
	// ("/var/log/remote/{hostname}/{date}.log") keeps open; the least
	// recently written is closed to open another.
	MaxOpenFiles int `toml:"max_open_files"`
}

// configType is what conf knows of the file type.
var configType = conf.SinkType{
	New:             func() conf.SinkOptions { return &Config{} },
	Encodings:       []string{"raw", "rfc5424", "rfc3164", "traditional", "traditional-rfc3339", "json"},
	DefaultEncoding: DefaultEncoding,
	Order:           30,
	Keys: []conf.KeyDoc{
		{Key: "path", Type: "string", Default: "required", Doc: "File appended to, reopened on SIGHUP (for logrotate). It may hold placeholders, one file per value, like rsyslog's dynaFile: `\"/var/log/remote/{hostname}/{date}.log\"`. " + pathFieldsDoc() + " Directories are created as needed (mode 0750). A file that cannot be opened for good (its directory is a file, a link, no permission) does not hold up the others: its messages are dropped and counted (`wharf_sink_dropped_total{reason=\"rejected\"}`, logged); a full disk is retried like any failed write. Relative to wharf's working directory. Opened with `O_NOFOLLOW`: a symbolic link at this path is refused, not followed (wharf often runs as root; anyone who can write in the log directory could otherwise point it at any file), and so are a directory, a FIFO or device, and a file with more than one hard link; `wharf check` refuses a path that is one of these already, a refused reopen keeps the old file. With placeholders, nothing below the fixed part of the path (`/var/log/remote` for `/var/log/remote/{hostname}/x.log`) may be a symbolic link leading out of it: a host directory someone made a link to `/etc` is refused, not followed. Links among the fixed directories are followed: keep them writable by root or wharf's user only."},
		{Key: "file_mode", Type: "string", Default: conf.RefString(DefaultFileMode), Doc: "Octal permission for a new file."},
		{Key: "max_open_files", Type: "integer", Default: fmt.Sprint(DefaultMaxOpenFiles), Doc: "With placeholders in `path`: most files kept open at once (1-" + fmt.Sprint(MaxMaxOpenFiles) + "). To write another, the least recently written is closed (`wharf_sink_file_closes_total{reason=\"lru\"}`); a file not written for " + DefaultFileIdleClose.String() + " is closed too (`reason=\"idle\"`), so yesterday's `{date}` files do not stay open. `wharf_sink_open_files` is the number open."},
	},
}

// ApplyDefaults fills every unset key.
func (c *Config) ApplyDefaults() {
	if c.FileMode == "" {
		c.FileMode = DefaultFileMode
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = DefaultMaxOpenFiles
	}
}

// Validate reports every problem with the keys.
func (c *Config) Validate(v *conf.SinkCheck) {
	if c.Path == "" {
		v.Errorf("", "file sink needs path = \"/var/log/wharf/messages.jsonl\"")
	} else if parts, err := ParsePathTemplate(c.Path); err != nil {
		v.Errorf("path", "%v", err)
	} else if !IsPathTemplate(parts) {
		if err := logfile.CheckPath(c.Path); err != nil {
			v.Errorf("path", "%v", err)
		} else if err := conf.CheckFileDir(c.Path, filepath.Dir(c.Path)); err != nil {
			v.Errorf("path", "%v", err) // a parent that is a file: run could not create it
		}
	} else if err := conf.CheckFileDir(c.Path, StaticDir(parts)); err != nil {
		v.Errorf("path", "%v", err)
	}
	if _, err := ParseFileMode(c.FileMode); err != nil {
		v.Errorf("file_mode", "%v", err)
	}
	if c.MaxOpenFiles < 1 || c.MaxOpenFiles > MaxMaxOpenFiles {
		v.Errorf("max_open_files", "%d out of range (1-%d)", c.MaxOpenFiles, MaxMaxOpenFiles)
	}
}

// Describe writes the resolved settings for `wharf check`.
func (c *Config) Describe(pr func(format string, args ...any)) {
	pr("path %s, file_mode %s", c.Path, c.FileMode)
}

// ParseFileMode parses an octal permission string such as "0640".
func ParseFileMode(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("file_mode %q: want an octal permission such as \"0640\"", s)
	}
	return uint32(n), nil
}

var _ conf.SinkOptions = (*Config)(nil)
