# wharf — see README.md. `make run` and `make test` work on a fresh machine.
GO      ?= go
BIN     := bin
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
PREFIX  ?= /usr/local
CONFIG  ?= examples/wharf.toml

.PHONY: all build run test test-unit deps peers-up peers-down bench fuzz lint install clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/wharf ./cmd/wharf
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/wharf-bench ./cmd/wharf-bench

# Runs wharf on the example config: syslog on udp+tcp 127.0.0.1:5514,
# messages to var/messages.jsonl and stdout, admin on 127.0.0.1:9600.
run: build
	@mkdir -p var
	$(BIN)/wharf run -c $(CONFIG)

# Everything the tests need (Debian packages, Go modules, Kafka from Maven
# Central), real peers started on loopback, then every test, then the
# peers stopped again. See test/run.sh.
test:
	bash test/deps.sh
	bash test/run.sh

# Unit tests only: no peers, peer tests skip.
test-unit:
	$(GO) test ./...

deps:
	bash test/deps.sh

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./ingest/... ./route/ ./sinks/
	bash bench/instr.sh
	bash bench/run.sh

fuzz:
	bash test/fuzz.sh 1000000x

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

install: build
	install -D -m 0755 $(BIN)/wharf $(DESTDIR)$(PREFIX)/bin/wharf
	install -D -m 0755 $(BIN)/wharf-bench $(DESTDIR)$(PREFIX)/bin/wharf-bench
	# The config is the operator's once it exists: never overwritten.
	test -e $(DESTDIR)/etc/wharf/wharf.toml || install -D -m 0644 examples/wharf.toml $(DESTDIR)/etc/wharf/wharf.toml
	sed 's|/usr/local/bin/wharf|$(PREFIX)/bin/wharf|g' deploy/wharf.service | install -D -m 0644 /dev/stdin $(DESTDIR)/lib/systemd/system/wharf.service
	install -D -m 0644 deploy/wharf.sysusers $(DESTDIR)/usr/lib/sysusers.d/wharf.conf
	install -D -m 0644 deploy/wharf.logrotate $(DESTDIR)/etc/logrotate.d/wharf
	install -d $(DESTDIR)$(PREFIX)/share/wharf/examples
	install -m 0644 examples/*.toml $(DESTDIR)$(PREFIX)/share/wharf/examples/
	$(BIN)/wharf completion bash | install -D -m 0644 /dev/stdin $(DESTDIR)/usr/share/bash-completion/completions/wharf
	$(BIN)/wharf completion zsh | install -D -m 0644 /dev/stdin $(DESTDIR)/usr/share/zsh/vendor-completions/_wharf
	$(BIN)/wharf help man | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/share/man/man1/wharf.1

clean:
	rm -rf $(BIN) var
