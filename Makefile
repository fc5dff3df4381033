# opspilot — the two commands: `make run` and `make test`.
# Needs only Go (1.26+); everything else is built from go.mod.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VPKG     := github.com/prometheus/common/version
BUILDDATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
LDFLAGS  := -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=$(BRANCH) -X $(VPKG).BuildDate=$(BUILDDATE)
ARGS     ?=

.PHONY: run build test bench fuzz clean

## run: build opspilot and start the all-in-one embedded default with the demo workload (opspilot up --demo)
run: build
	./bin/opspilot up --demo $(ARGS)

## build: build bin/opspilot, and bin/victoria-logs (the embedded log store) from go.mod
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/opspilot ./cmd/opspilot
	$(GO) build -o bin/victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs

## test: formatting, vet, and every test with the race detector
test:
	./.ci/test.sh

## bench: the benchmarks recorded in bench/RESULTS.md
bench:
	$(GO) test ./bench -run '^$$' -bench Ingest -benchtime 20x -count 5
	$(GO) test ./bench -run '^$$' -bench Startup -benchtime 5x -count 3
	$(GO) test ./bench -run '^$$' -bench CrashReplacement -benchtime 20x -count 1
	$(GO) test ./bench -run '^$$' -bench ScaleOut -benchtime 5x -count 1
	$(GO) test ./bench -run '^$$' -bench AutoscaleDecision -benchtime 20x -count 1
	$(GO) test ./bench -run '^$$' -bench AutoscaleScaleOut -benchtime 5x -count 1
	$(GO) test ./bench -run '^$$' -bench AlertNotify -benchtime 20x -count 1
	$(GO) test ./bench -run '^$$' -bench DatacenterFailover -benchtime 10x -count 1
	$(GO) test ./grafana/backfill -run '^$$' -bench Generate30Days -benchtime 1x -count 3
	$(GO) test ./grafana -run '^$$' -bench Backfill30Days -benchtime 1x -count 1
	$(GO) test ./alerting -run '^$$' -bench Evaluate10k -benchtime 10x -count 3
	$(GO) test ./orchestrator/scheduler -run '^$$' -bench Schedule10k -benchtime 5x -count 3
	$(GO) test ./analyzer -run '^$$' -bench 'Ensemble|BOCPD|Decompose|Multivariate' -benchmem -count 3
	$(GO) test ./analyzer/online -run '^$$' -bench OnlinePass -benchtime 20x -count 3
	$(GO) test ./analyzer/forecast -run '^$$' -bench 'Fit4Weeks|Update' -count 3
	$(GO) test ./analyzer/loganomaly -run '^$$' -bench 'DrainAdd|Scan' -count 3
	OPSPILOT_NAB=1 $(GO) test ./analyzer -run 'TestNAB$$' -v -count 1

## fuzz: run each fuzz target for FUZZTIME (default 60s)
FUZZTIME ?= 60s
FUZZ_TARGETS := ./config:FuzzParse ./config:FuzzParseDocuments ./cmd/opspilot:FuzzParseSpecs \
	./cmd/opspilot:FuzzParseTime ./orchestrator/model:FuzzParseQuantities ./orchestrator/pki:FuzzParseJoinToken \
	./orchestrator/gateway:FuzzResolve ./collector/scrape:FuzzPushText ./collector/scrape:FuzzPushRemoteWrite \
	./collector/logs:FuzzParseLine ./collector/diskqueue:FuzzOpenCorruptSegment ./collector/host:FuzzCollectMalformedProc \
	./collector/container:FuzzParseCgroupFile ./examples/billing:FuzzPayBody ./analyzer:FuzzReadCSV \
	./analyzer:FuzzUnmarshalState ./analyzer:FuzzModels ./analyzer:FuzzARTime ./analyzer/forecast:FuzzFit ./analyzer/forecast:FuzzUnmarshalBinary \
	./analyzer/rootcause:FuzzCorrelateRank ./analyzer/loganomaly:FuzzDrain ./analyzer/loganomaly:FuzzErrorWord \
	./analyzer/loganomaly:FuzzParseFlatRow ./autoscaler:FuzzPolicyYAML ./alerting:FuzzParseRuleFile \
	./alerting:FuzzSlackInteraction ./alerting:FuzzSlackActionValue ./alerting:FuzzSilenceAPI ./runbooks:FuzzParseCommand \
	./runbooks:FuzzRunbookYAML ./runbooks:FuzzSlackCommandRequest \
	./grafana/report:FuzzParseTimeOfDay ./grafana/report:FuzzScheduleValidate ./grafana/report:FuzzParseCertificates \
	./grafana:FuzzExportOptions
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn"; $(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) || exit 1; done

clean:
	rm -rf bin
