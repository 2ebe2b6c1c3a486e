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

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 $(PKGS)

# The test command of the README: unit, property and simulator tests under the
# race detector, then vet.
test: vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

clean:
	rm -rf $(BIN)
