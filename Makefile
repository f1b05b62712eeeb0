# triage: Falco plugin (libtriage.so), CLI and tests.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell sed -n 's/^var Version = "\(.*\)"/\1/p' pkg/plugin/plugin.go)
LDFLAGS := -X github.com/triage-dev/triage/pkg/plugin.Version=$(VERSION)
GO_SOURCES := $(shell find . -name '*.go' -not -path './.git/*') go.mod go.sum
LIB := libtriage.so
CLI := bin/triage

.PHONY: all clean test demo readme-fields check-readme-fields vet fmt

all: $(LIB) $(CLI)

# Rebuilt whenever any Go source, go.mod or go.sum changes.
$(LIB): $(GO_SOURCES)
	$(GO) build -buildmode=c-shared -trimpath -ldflags '$(LDFLAGS)' -o $@ ./plugin

$(CLI): $(GO_SOURCES) $(shell find cmd pkg -type f -not -name '*.go')
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/triage

# The end-to-end tests in test/ load $(LIB) through the plugin C ABI.
test: $(LIB)
	$(GO) vet ./...
	TRIAGE_LIB=$(CURDIR)/$(LIB) $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory check-readme-fields

demo: $(CLI)
	./$(CLI) demo

# Regenerates the README's field table from the plugin's own field list.
readme-fields: $(CLI)
	./$(CLI) fields --readme README.md

check-readme-fields: $(CLI)
	./$(CLI) fields --readme README.md --check

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(LIB) libtriage.h bin
