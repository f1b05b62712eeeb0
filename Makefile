# triage: Falco plugin (libtriage.so), CLI and tests.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell sed -n 's/^var Version = "\(.*\)"/\1/p' pkg/plugin/plugin.go)
LDFLAGS := -X github.com/triage-dev/triage/pkg/plugin.Version=$(VERSION)
GO_SOURCES := $(shell find . -name '*.go' -not -path './.git/*') go.mod go.sum
LIB := libtriage.so
CLI := bin/triage

.PHONY: all clean test demo readme-fields check-readme-fields vet fmt release

all: $(LIB) $(CLI)

# Release artifacts in $(DIST): the plugin built afresh with this VERSION
# (the same c-shared build as $(LIB)), the rules, and SHA256SUMS of both.
# `make release DIST=/tmp/x` writes elsewhere; `cd $(DIST) && sha256sum -c SHA256SUMS` checks.
DIST ?= dist
PLATFORM = $(shell $(GO) env GOOS)-$(shell $(GO) env GOARCH)
release:
	@test -n "$(VERSION)" || { echo "release: no version found in pkg/plugin/plugin.go" >&2; exit 1; }
	@mkdir -p $(DIST)
	$(GO) build -buildmode=c-shared -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/libtriage-$(VERSION)-$(PLATFORM).so ./plugin
	rm -f $(DIST)/libtriage-$(VERSION)-$(PLATFORM).h
	cp rules/triage_rules.yaml $(DIST)/triage_rules.yaml
	cd $(DIST) && sha256sum libtriage-$(VERSION)-$(PLATFORM).so triage_rules.yaml > SHA256SUMS

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

# Stage benchmarks, the webhook load generator (loopback, bounded in alerts
# and time) and sync vs async extraction; rewrites the measured section of
# docs/performance.md. Takes a few minutes.
.PHONY: bench
bench: $(LIB)
	$(GO) run ./cmd/loadgen report -lib $(CURDIR)/$(LIB) -out docs/performance.md

# Fleet tier on Kafka (kfake in process): alerts/s through route and the
# kafka:// input with 1 and 2 consumers, rebuild time per 100,000 alerts.
.PHONY: bench-fleet
bench-fleet:
	$(GO) test ./pkg/input/kafka/ ./pkg/route/ -run '^$$' -bench . -benchtime=1x

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
