# Antaca: issuer processor. `make help` lists the targets.
GO        ?= go
GOFLAGS   ?=
FUZZTIME  ?= 20s
TESTFLAGS ?= -count=1 -timeout 30m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: postgres ## run the system on its embedded default: local Postgres under ./.data, demo data, switch and API
	$(GO) run ./cmd/antaca all -data .data

.PHONY: ha
ha: postgres ## the replicated ledger on this machine: etcd and two PostgreSQL nodes under Patroni in ./.data/ha, migrations, demo data, switch and API
	scripts/ha.sh start .data/ha
	$(GO) run ./cmd/antaca all -data .data/ha -database-url "$$(scripts/ha.sh url .data/ha)"

.PHONY: ha-stop
ha-stop: ## stop the cluster of make ha (etcd, Patroni and its PostgreSQL nodes)
	scripts/ha.sh stop .data/ha

.PHONY: failover
failover: ## kill the database primary under load on a Patroni cluster of its own; prints the failover: line
	@$(GO) test -count=1 -run '^TestFailover$$' -v ./cmd/antaca/ >.failover.log 2>&1; s=$$?; \
	  grep '^failover:' .failover.log || tail -40 .failover.log; exit $$s

.PHONY: test
test: postgres chromium ## run every test, against a real PostgreSQL (and a headless Chromium for the panel)
	$(GO) vet ./...
	scripts/test.sh $(TESTFLAGS)

.PHONY: bench
bench: postgres ## Go benchmarks, then the switch load benchmark: ends with the bench: line (RUNS=3 for medians)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	GO=$(GO) scripts/bench.sh $(ARGS)

.PHONY: loadtest
loadtest: ## run the load generator against a running switch (ARGS="-addr 127.0.0.1:8583 -cards cards.json -duration 20s")
	$(GO) run ./cmd/loadtest $(ARGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: faults
faults: postgres ## run the fault and attack tests; they write their table to docs/faults.md
	sed -i '/^|/d' docs/faults.md
	ANTACA_FAULT_REPORT=$(CURDIR)/docs/faults.md $(GO) test -count=1 -run '^Test(Fault|HostileClients|APIAbuse|SecretsNeverWritten|Attack|Failover|TwoOfEach)' ./switch/ ./cmd/antaca/ ./api/ ./ledger/
	rm -f docs/faults.md.lock docs/faults.md.tmp

.PHONY: fmt
fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet
	$(GO) vet ./...

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy

.PHONY: clean
clean: ## remove ./.data (the local cluster, keys, demo data) and build output
	-scripts/ha.sh stop .data/ha 2>/dev/null
	rm -rf .data bin .test.log .failover.log

.PHONY: postgres
postgres:
	@scripts/ensure-postgres.sh

.PHONY: chromium
chromium:
	@scripts/ensure-chromium.sh

.PHONY: screenshots
screenshots: postgres chromium ## write a PNG of each panel page to docs/panel/
	ANTACA_SCREENSHOTS=$(CURDIR)/docs/panel $(GO) test -count=1 -run '^TestPanelScreenshots$$' ./api/panel/
