# cxlregiond — see README.md.
GO      ?= go
BIN     := bin
PKGS    := ./...
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/cxlregion/cxlregiond/api.Version=$(VERSION)

.PHONY: all build test lint vet demo e2e e2e-qemu bench install clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The version of staticcheck is pinned here, so a new release's checks
# cannot turn CI red on their own; `go run` fetches it through the module
# proxy into the module cache (about a minute from an empty cache).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

vet:
	$(GO) vet $(PKGS)

# lint keeps the tree clean: gofmt, go vet, staticcheck, and a go.mod and
# go.sum that `go mod tidy` would not change. Each step fails the target.
lint: vet
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) mod tidy -diff

# The test command of the README: lint first, then unit, property and
# simulator tests under the race detector.
test: lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# install puts the binaries and the deploy/ files where Debian expects them;
# DESTDIR stages them under a root (packaging, and deploy/'s tests, which
# run `systemd-analyze verify` on the staged unit). The paths are fixed:
# the unit's ExecStart= and the D-Bus activation file name them.
install: build install-data
	install -D -m 0755 $(BIN)/cxlregiond $(DESTDIR)/usr/sbin/cxlregiond
	install -D -m 0755 $(BIN)/cxlregionctl $(DESTDIR)/usr/bin/cxlregionctl

install-data:
	install -D -m 0644 deploy/systemd/cxlregiond.service $(DESTDIR)/usr/lib/systemd/system/cxlregiond.service
	install -D -m 0644 deploy/dbus/io.github.cxlregion1.conf $(DESTDIR)/usr/share/dbus-1/system.d/io.github.cxlregion1.conf
	install -D -m 0644 deploy/dbus/io.github.cxlregion1.service $(DESTDIR)/usr/share/dbus-1/system-services/io.github.cxlregion1.service
	install -D -m 0644 deploy/polkit/io.github.cxlregion1.policy $(DESTDIR)/usr/share/polkit-1/actions/io.github.cxlregion1.policy
	install -D -m 0644 deploy/tmpfiles/cxlregiond.conf $(DESTDIR)/usr/lib/tmpfiles.d/cxlregiond.conf

.PHONY: install-data

clean:
	rm -rf $(BIN)

# The demo of the README: the daemon on its kernel simulator with a private
# D-Bus, driven by the CLI; any machine with dbus-daemon, no hardware.
demo: build
	BIN=$(BIN) scripts/demo.sh

# The black-box tests alone: daemon + CLI + a private dbus-daemon on the
# simulator (the QEMU suite is e2e-qemu).
e2e:
	$(GO) test -race -count=1 -timeout 10m ./test/e2e/

# Debian's unpatched 6.1 and 6.12 kernels under QEMU (TCG): the delete_region
# race baselines and the serialized/daemon paths, same boot. Needs
# test/e2e/qemu/deps.sh once (root); CYCLES=1000 is the long run.
KERNELS ?= 6.1 6.12
CYCLES  ?= 100
e2e-qemu:
	KERNELS="$(KERNELS)" CYCLES="$(CYCLES)" GO="$(GO)" test/e2e/qemu/run.sh

# Benchmarks that print ratios measured in one run (bench/README.md): daemon
# against raw writes, parallel root decoders, coalesced deletes, and the
# guard's open overhead. About two minutes on 2 cores; the full output
# stays in bin/bench.txt, then a short table of the ratios.
BENCHTIME ?= 2s
bench:
	@mkdir -p $(BIN)
	@{ $(GO) test -run '^$$' -bench . -benchtime=$(BENCHTIME) -count=1 ./bench/ ./internal/guard/; \
	   echo $$? > $(BIN)/bench.rc; } 2>&1 | tee $(BIN)/bench.txt
	@echo; awk -f bench/table.awk $(BIN)/bench.txt
	@exit $$(cat $(BIN)/bench.rc)
