# calsync entry points. `make run` = the demo on the local stack; `make test` = what CI runs.
SHELL := /bin/bash
VENV  := .venv
STACK := infra/local/stack.sh
ICS   ?=

# Local stack ports (infra/local/stack.sh reads them too).
export MOTO_PORT             ?= 4566
export RADICALE_PORT         ?= 5232
export XANDIKOS_PORT         ?= 8080
export CALSYNC_RADICALE_URL  ?= http://127.0.0.1:$(RADICALE_PORT)
export CALSYNC_XANDIKOS_URL  ?= http://127.0.0.1:$(XANDIKOS_PORT)
# The functions read the standard AWS environment, pointed at moto locally.
export AWS_ENDPOINT_URL      ?= http://127.0.0.1:$(MOTO_PORT)
export AWS_REGION            ?= us-east-1
export AWS_ACCESS_KEY_ID     ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export CALSYNC_STACK         ?= calsync
# Outbound requests reach public addresses only; the local stack's servers listen on
# 127.0.0.1, admitted here and nowhere else (see shared/src/net.rs).
export CALSYNC_ALLOW_NETS    ?= 127.0.0.1/32
export CARGO_TERM_COLOR      ?= never

.PHONY: run serve test lint build browser-deps bench bench-scale bench-rss bench-fanout bench-functions profile soak fuzz deploy stop stack venv sam-venv sam-check unit e2e connect-google
API_PORT ?= 8000

venv: $(VENV)/.installed
$(VENV)/.installed: infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r infra/local/requirements.txt
	touch $@

# The AWS SAM CLI pins another boto3 than moto: it gets a virtualenv of its own.
SAM_VENV := .venv-sam
sam-venv: $(SAM_VENV)/.installed
$(SAM_VENV)/.installed: infra/local/requirements-sam.txt
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q -r infra/local/requirements-sam.txt
	touch $@

## sam-check: `sam validate --lint`, then `sam build` of every function from the repository
## (x86_64 and SAM's debug mode, cargo's dev profile, so that it checks the build, not the
## optimiser: the release profile's per-dependency opt-level cannot be lowered from the
## environment)
sam-check: venv sam-venv
	cd infra && AWS_DEFAULT_REGION=us-east-1 ../$(SAM_VENV)/bin/sam validate --lint
	cd infra && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" AWS_DEFAULT_REGION=us-east-1 \
		SAM_BUILD_MODE=debug \
		../$(SAM_VENV)/bin/sam build --parameter-overrides Architecture=x86_64 --build-dir .aws-sam/check
	test -x infra/.aws-sam/check/ApiFunction/bootstrap && test -x infra/.aws-sam/check/SyncWorkerFunction/bootstrap

build:
	cargo build --workspace --all-targets

## run: fresh local stack, then the demo sync group (ICS=path/to/file.ics for your own calendar)
run: venv
	cargo build -p calsync-e2e --bin calsync-local
	$(STACK) start
	./target/debug/calsync-local demo $(if $(ICS),--ics "$(ICS)",)

## serve: fresh local stack, then the API (http://127.0.0.1:$(API_PORT)/v1), token issuer,
## webhook routes, Google emulator, queue runner and schedule in the foreground (Ctrl-C stops)
serve: venv
	cargo build -p calsync-e2e --bin calsync-local
	$(STACK) start
	./target/debug/calsync-local serve --api-port $(API_PORT)

## connect-google: OAuth consent for a Google calendar on the local stack (GROUP=, USER_ID=,
## CALENDAR=primary, PORT=8765; the OAuth client in Secrets Manager, see the README)
connect-google:
	cargo build -p calsync-e2e --bin calsync-local
	./target/debug/calsync-local connect-google --group "$(GROUP)" --user "$(USER_ID)" \
		--calendar "$(or $(CALENDAR),primary)" --port "$(or $(PORT),8765)"

## browser-deps: Debian's chromium + chromium-driver (when missing) and axe-core from npm, for
## the settings page's browser tests (`settings_page::` in the e2e suite)
browser-deps:
	infra/local/browser-deps.sh

stack: venv
	$(STACK) start

stop:
	$(STACK) stop

lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(VENV)/bin/openapi-spec-validator docs/openapi.json

## test: lint, sam validate + sam build, unit and corpus tests, then the integration tests
## (the settings page's in headless Chromium among them) against a fresh local stack
## (every step selects the whole workspace, so that cargo builds each crate once: `-p` would
## unify features differently and build the engine and the test binaries a second time)
SHARED_TESTS := $(patsubst shared/tests/%.rs,--test %,$(wildcard shared/tests/*.rs))
test: venv lint
	cargo build --workspace --all-targets
	$(MAKE) sam-check
	cargo test --workspace --lib --bins
	cargo test --workspace $(SHARED_TESTS) -- --nocapture
	infra/local/browser-deps.sh
	infra/local/with-stack.sh cargo test --workspace --test e2e -- --test-threads=1

## soak: generated fault schedules (SCHEDULES=1000 by default, EPOCHS=1); prints schedules
## run, faults fired per kind and invariant violations; CALSYNC_SEED=N replays one
SCHEDULES ?= 1000
EPOCHS ?= 1
soak: venv
	cargo build --release -p calsync-e2e --bin calsync-local
	infra/local/with-stack.sh ./target/release/calsync-local soak --schedules $(SCHEDULES) --epochs $(EPOCHS)

## fuzz: the cargo-fuzz targets (nightly), SECONDS=N each (default 60), seeded from
## ../shared/corpus; crashes become regression inputs under fuzz/regressions/
FUZZ_SECONDS ?= $(if $(SECONDS),$(SECONDS),60)
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

## bench: calsync side by side with the floor (a PUT loop) and vdirsyncer, EVENTS=1000 by default
EVENTS ?= 1000
# The six functions in one cargo invocation without the test harness, as SAM builds them
# (one function at a time, with its own features: no aws-lc, which the harness's browser
# client brings in), then calsync-local; the same two each time, so no rebuild between one
# bench target and another.
FUNCTIONS_BUILD := cargo build --release -p autosync -p sync-worker -p sync-back -p token-refresher -p webhook-receiver -p api
RELEASE_BUILD := $(FUNCTIONS_BUILD) && cargo build --release -p calsync-e2e --bin calsync-local
bench: venv
	$(RELEASE_BUILD)
	infra/local/with-stack.sh ./target/release/calsync-local bench --events $(EVENTS)

## bench-scale: the Radicale -> Xandikos part at SIZES=1000,5000,10000 events, the growth
## table, and the sync worker's and sync-back's peak RSS at the largest size (not in CI);
## PEERS_UP_TO=5000 leaves the floor and vdirsyncer out above 5,000 events (about an hour
## each at 10,000: Xandikos slows as its collection grows)
SIZES ?= 1000,5000,10000
bench-scale: venv
	$(RELEASE_BUILD)
	infra/local/with-stack.sh ./target/release/calsync-local bench-scale --sizes $(SIZES) $(if $(PEERS_UP_TO),--peers-up-to $(PEERS_UP_TO))

## bench-rss: the sync worker's and sync-back's peak RSS on a Radicale calendar of RSS_EVENTS
## events (one job each through the release binaries; minutes, not in CI)
RSS_EVENTS ?= 10000
bench-rss: venv
	$(RELEASE_BUILD)
	infra/local/with-stack.sh ./target/release/calsync-local bench-rss --events $(RSS_EVENTS)

## bench-fanout: the schedule's tick and the token refresher's run against LINKS=100000 links (cohorts of 100, 1,000 and
## 3,000 due), items read beside a Scan's
LINKS ?= 100000
bench-fanout: venv
	$(RELEASE_BUILD)
	infra/local/with-stack.sh ./target/release/calsync-local bench-fanout --links $(LINKS)

## bench-functions: the six release binaries' size, cold init (median of 9 starts through a
## stand-in runtime API) and RSS after init; no stack needed
bench-functions:
	$(RELEASE_BUILD)
	./target/release/calsync-local bench-functions

## profile: perf over calsync's initial sync alone (the profiling build), flat profile in
## target/profile/profile.txt (needs Debian's linux-perf); PROFILE_SCALE=1 EVENTS=10000
## profiles bench-scale at that size instead (calsync alone)
profile: venv
	cargo build --profile profiling -p calsync-e2e --bin calsync-local
	EVENTS=$(EVENTS) PROFILE_SCALE=$(PROFILE_SCALE) infra/local/with-stack.sh infra/local/profile.sh

## deploy: sam build + sam deploy with infra/samconfig.toml (ARGS=--guided the first time)
deploy: venv sam-venv
	cd infra && PATH="$(CURDIR)/$(VENV)/bin:$(CURDIR)/$(SAM_VENV)/bin:$$PATH" sam build && \
		PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" sam deploy $(ARGS)
