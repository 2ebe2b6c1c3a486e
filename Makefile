# cxlregiond — see README.md.
GO      ?= go
BIN     := bin
PKGS    := ./...
# scripts/version.sh: "0.1.0~git312 abc1234" (number, commit), the one
# version of both binaries, D-Bus, metrics and the Debian package.
VERSION_INFO := $(shell scripts/version.sh)
VERSION ?= $(word 1,$(VERSION_INFO))
COMMIT  ?= $(word 2,$(VERSION_INFO))
LDFLAGS := -X github.com/cxlregion/cxlregiond/api.Version=$(VERSION) -X github.com/cxlregion/cxlregiond/api.Commit=$(COMMIT)

.PHONY: all build test lint vet demo e2e e2e-qemu e2e-qemu-newest e2e-systemd bench install install-files clean man deb fuzz soak faults crashloop

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
install: build completions install-files

# install-files installs what `build` and `completions` made, without
# building (debian/rules calls it).
install-files: install-data
	install -D -m 0755 $(BIN)/cxlregiond $(DESTDIR)/usr/sbin/cxlregiond
	install -D -m 0755 $(BIN)/cxlregionctl $(DESTDIR)/usr/bin/cxlregionctl
	for p in cxlregiond cxlregionctl; do \
	  install -D -m 0644 $(BIN)/completion/$$p.bash $(DESTDIR)/usr/share/bash-completion/completions/$$p; \
	  install -D -m 0644 $(BIN)/completion/$$p.zsh $(DESTDIR)/usr/share/zsh/vendor-completions/_$$p; \
	  install -D -m 0644 $(BIN)/completion/$$p.fish $(DESTDIR)/usr/share/fish/vendor_completions.d/$$p.fish; \
	done

# completions: bash, zsh and fish completion scripts, from the binaries'
# own command definitions (cobra).
completions: build
	mkdir -p $(BIN)/completion
	for p in cxlregiond cxlregionctl; do for sh in bash zsh fish; do \
	  $(BIN)/$$p completion $$sh >$(BIN)/completion/$$p.$$sh || exit 1; done; done

install-data:
	install -D -m 0644 deploy/systemd/cxlregiond.service $(DESTDIR)/usr/lib/systemd/system/cxlregiond.service
	install -D -m 0644 deploy/dbus/io.github.cxlregion1.conf $(DESTDIR)/usr/share/dbus-1/system.d/io.github.cxlregion1.conf
	install -D -m 0644 deploy/dbus/io.github.cxlregion1.service $(DESTDIR)/usr/share/dbus-1/system-services/io.github.cxlregion1.service
	install -D -m 0644 deploy/polkit/io.github.cxlregion1.policy $(DESTDIR)/usr/share/polkit-1/actions/io.github.cxlregion1.policy
	install -D -m 0644 deploy/tmpfiles/cxlregiond.conf $(DESTDIR)/usr/lib/tmpfiles.d/cxlregiond.conf
	install -D -m 0644 deploy/sysusers/cxlregiond.conf $(DESTDIR)/usr/lib/sysusers.d/cxlregiond.conf
	install -D -m 0644 deploy/config/cxlregiond.conf $(DESTDIR)/etc/cxlregiond/cxlregiond.conf
	install -d $(DESTDIR)/usr/share/man/man5 $(DESTDIR)/usr/share/man/man8
	install -m 0644 docs/man/*.5 $(DESTDIR)/usr/share/man/man5/
	install -m 0644 docs/man/*.8 $(DESTDIR)/usr/share/man/man8/

.PHONY: install-data completions

# man rewrites the generated files of the source tree from the code: the
# man pages (docs/man) and the default config file (deploy/config); the
# tests TestGeneratedFilesCurrent and TestManPagesCurrent fail until then.
man:
	$(GO) test -count=1 -run 'TestGeneratedFilesCurrent|TestManPagesCurrent' ./cmd/cxlregiond/ ./cmd/cxlregionctl/ -update

# deb builds out/cxlregiond_<version>_amd64.deb with debhelper (the unit is
# enabled by dh_installsystemd) from a staged copy of the tree under
# .cache/deb, then runs lintian on it (errors fail the build). Needs
# test/e2e/qemu/deps.sh once (debhelper, lintian).
DEB := out/cxlregiond_$(VERSION)_amd64.deb
deb: build completions
	rm -rf .cache/deb && mkdir -p .cache/deb/src out
	cp -a Makefile debian deploy docs $(BIN) .cache/deb/src/
	mkdir -p .cache/deb/src/scripts && cp scripts/version.sh .cache/deb/src/scripts/
	printf '%s (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n' \
	  cxlregiond $(VERSION) $(COMMIT) "$$(sed -n 's/^Maintainer: //p' debian/control)" \
	  "$$(date -R -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" >.cache/deb/src/debian/changelog
	cd .cache/deb/src && dpkg-buildpackage -b -us -uc --no-pre-clean >../build.log 2>&1 || { tail -30 ../build.log; exit 1; }
	cp .cache/deb/cxlregiond_$(VERSION)_amd64.deb $(DEB)
	lintian --fail-on error --suppress-tags statically-linked-binary $(DEB)
	@echo "deb: $(DEB)"

clean:
	rm -rf $(BIN) out .cache/deb

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

# The Debian package on a Debian 12 guest booted with systemd, the system
# bus and polkit, on the same kernels and CXL machine (test/e2e/systemd).
# Root; test/e2e/qemu/deps.sh once.
e2e-systemd:
	KERNELS="$(KERNELS)" GO="$(GO)" test/e2e/systemd/run.sh

# The newest 6.1 and 6.12 kernels apt offers (not the pinned captured ones),
# a small subset: the raw committed baseline, the daemon's concurrent deletes
# of a bound region, and kill -9 during deletes. A newest kernel whose
# baseline no longer races gives a "KERNEL CHANGED" row, not a failure
# (test/e2e/qemu/README.md). About 6 minutes.
NEWEST_ONLY ?= raw-committed,daemon-delete-bound,daemon-crash-delete
e2e-qemu-newest:
	KERNELS="6.1-newest 6.12-newest" CYCLES="$(CYCLES)" ONLY="$(NEWEST_ONLY)" GO="$(GO)" test/e2e/qemu/run.sh

# Benchmarks that print ratios measured in one run (bench/README.md): daemon
# against raw writes, parallel root decoders, coalesced deletes, the
# guard's open overhead and the uevent parser. About four minutes on 2
# cores; the full output stays in bin/bench.txt, then a short table of the
# ratios.
BENCHTIME ?= 2s
bench:
	@mkdir -p $(BIN)
	@{ $(GO) test -run '^$$' -bench . -benchtime=$(BENCHTIME) -count=1 ./bench/ ./internal/guard/ ./internal/uevent/; \
	   echo $$? > $(BIN)/bench.rc; } 2>&1 | tee $(BIN)/bench.txt
	@echo; awk -f bench/table.awk $(BIN)/bench.txt
	@exit $$(cat $(BIN)/bench.rc)

# Fault injection on the simulated kernel (internal/region TestFaults): every
# written attribute failing with EIO, EBUSY, ENXIO, EINTR, ENOMEM, ENODEV;
# slow writes past the caller's timeout; uevents dropped, duplicated,
# reordered, with SEQNUM gaps, overflowed; regions vanishing mid-scan; the
# state directory full or read-only (root: a small tmpfs); the lock
# directory removed. Prints "faults: N injected, M survived".
faults:
	@mkdir -p $(BIN)
	@$(GO) test -race -count=1 -timeout 15m -run '^TestFaults$$' -v ./internal/region/ > $(BIN)/faults.txt 2>&1; rc=$$?; \
	  grep -E '^(--- FAIL|faults:)|FAIL' $(BIN)/faults.txt; exit $$rc

# The crash loop (test/e2e TestCrashLoop): the daemon SIGKILLed at random
# moments under four cxlregionctl clients' creates, deletes, enables and
# disables, restarted on the same persisted simulated kernel and state
# directory, ITERATIONS times; prints "crashloop: ... violations".
ITERATIONS ?= 200
crashloop:
	@mkdir -p $(BIN)
	@CRASHLOOP_ITERATIONS=$(ITERATIONS) $(GO) test -count=1 -timeout 30m -run '^TestCrashLoop$$' -v ./test/e2e/ > $(BIN)/crashloop.txt 2>&1; rc=$$?; \
	  grep -E '^(--- FAIL|crashloop:)|FAIL|violation|exit [0-9]' $(BIN)/crashloop.txt | head -40; exit $$rc

# Fuzzing: each target in turn for FUZZTIME (README, Reliability). make test
# runs their seed corpora (testdata/fuzz/<target>/ in each package: every
# crasher found is kept there). The fuzzer's own cache stays in GOCACHE.
# A Fuzz function missing from this list fails the run.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./api:FuzzDecode ./cmd/cxlregiond:FuzzConfig ./internal/devname:FuzzParseID ./internal/journal:FuzzDecode \
	./internal/service:FuzzOptions ./internal/service:FuzzRegionName ./internal/sysfs:FuzzParsers \
	./internal/sysfs:FuzzNames ./internal/sysfs:FuzzScanAttribute ./internal/uevent:FuzzParse
fuzz:
	@mkdir -p $(BIN)
	@for f in $$(git grep -h -o '^func Fuzz[A-Za-z0-9]*' -- '*_test.go' | cut -d' ' -f2); do \
	   case " $(FUZZ_TARGETS) " in *:$$f\ *) ;; *) echo "fuzz: $$f is not in FUZZ_TARGETS"; exit 1;; esac; done
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; start=$$(date +%s); \
	   $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg >$(BIN)/fuzz-$$fn.txt 2>&1 || \
	     { tail -30 $(BIN)/fuzz-$$fn.txt; echo "FAIL $$fn"; exit 1; }; \
	   echo "$$fn ($$pkg): $$(grep -o 'execs: [0-9]*' $(BIN)/fuzz-$$fn.txt | tail -1 | cut -d' ' -f2) execs in $$(( $$(date +%s) - start )) s, 0 crashers"; done

# Soak (README, Reliability): 16 clients doing random operations on the
# engine over the simulated kernel, with another tool's raw creates and
# deletes, auto-assembly and cxl_acpi unbinds beside them, for DURATION.
# Prints resources at start and end, operations, WARNING/BUG and double
# deletes (both must be 0). Without the race detector: it is the
# long-running daemon's build. CI runs DURATION=2m.
DURATION ?= 2m
soak:
	@mkdir -p $(BIN)
	CXLREGIOND_SOAK=$(DURATION) $(GO) test -count=1 -timeout 0 -v -run '^TestSoak$$' ./internal/region/ >$(BIN)/soak.txt 2>&1; \
	  rc=$$?; grep -E 'soak_test.go|^(---|ok|FAIL|PASS)' $(BIN)/soak.txt; \
	  [ $$rc = 0 ] || sed -n '/the first reports/,/^--- FAIL/p' $(BIN)/soak.txt | head -200; exit $$rc
