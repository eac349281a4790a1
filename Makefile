# lvdiff.thin: every entry point a developer or CI needs. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: deps test unit fuzz lint test-matrix ee-check integration demo guest guest-stop guest-lock bench bench-smoke bench-transfer bench-fleet docs docs-check clean

deps:
	@tests/setup/deps.sh

COLLECTION_LINK := tests/output/collections/ansible_collections/lvdiff/thin

## make test: every test (unit tests on real thin-tools output, the quality gates, the docs site
## built and screenshot-checked, a smoke run of the benchmarks), beside real LVM in two guests, Debian 12 and 13:
## the modules' targets on both, the role targets split between them (tests/test.sh)
test: deps $(COLLECTION_LINK)
	tests/test.sh

unit: deps $(COLLECTION_LINK)
	$(PY) -m pytest -q tests/unit

## Long fuzzing of both diff readers (make unit runs 2500 cases of the same test): LVDIFF_FUZZ_CASES
## cases (default 200000; about 9 ms each), LVDIFF_FUZZ_SEED for another sequence
fuzz: deps $(COLLECTION_LINK)
	LVDIFF_FUZZ_CASES=$${LVDIFF_FUZZ_CASES:-200000} $(PY) -m pytest -q -s tests/unit/plugins/module_utils/test_fuzz.py

## Ansible quality gates: ansible-test sanity and units, ansible-lint, antsibull-docs and
## -changelog lint, ruff, collection build + install + a module run (tests/lint/run.sh)
lint: deps $(COLLECTION_LINK)
	tests/lint/run.sh

## ansible-test sanity and units with each ansible-core release in use (2.16 to 2.19, pinned in
## tests/matrix/run.sh), each in its own venv under tests/output/matrix/, then the integration target
## roundtrip in the guest with the oldest and the newest; not in make test (15-25 min per release)
test-matrix: deps $(COLLECTION_LINK)
	tests/matrix/run.sh

## The execution-environment files (meta/execution-environment.yml, requirements.txt, bindep.txt) through
## ansible-builder introspect and create, and bindep (tests/ee/check.sh; also a gate of make lint)
ee-check: deps
	tests/ee/check.sh

## Integration targets on real LVM inside the QEMU guest (boots and stops it)
integration: deps $(COLLECTION_LINK)
	tests/integration/run.sh

# ansible-core finds the collection by this path; the checkout stays the only copy.
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../../.. $@

## Documentation site: antsibull-docs module pages + guides (Sphinx) into tests/output/docs/html
docs: deps $(COLLECTION_LINK)
	docs/site-src/build.sh

## make docs, then screenshots of two pages in headless Chromium, checked not blank (not in make test)
docs-check: deps $(COLLECTION_LINK)
	docs/site-src/check.sh

## Benchmarks: ratios against floors measured in the same run (tests/bench/run.py)
bench: deps
	$(PY) tests/bench/run.py --out tests/output/bench/results.md

## Every benchmark at tiny sizes: fails only if something errors
bench-smoke: deps
	$(PY) tests/bench/run.py --smoke --out tests/output/bench/results-smoke.md

## Host-to-host transfer throughput against OpenSSH, natively and in the guest (tests/bench/transfer.sh)
bench-transfer: deps $(COLLECTION_LINK)
	tests/bench/transfer.sh native
	tests/guest/start.sh
	tests/bench/transfer.sh guest; rc=$$?; tests/guest/stop.sh; exit $$rc

## The replicate role on one host with N volumes in the guest (boots and stops it): first, incremental and
## unchanged runs against ping and a dd|sha1sum loop (tests/bench/fleet.py); FLEET_SIZES (default "1 8 32")
bench-fleet: deps $(COLLECTION_LINK)
	$(PY) tests/bench/fleet.py --sizes $${FLEET_SIZES:-1 8 32}

## A real backup -> transfer -> restore round trip in the guest, verified byte for byte
demo: deps $(COLLECTION_LINK)
	tests/demo/run.sh

## The QEMU guest with real LVM thin pools (tests/guest/); GUEST=trixie for the Debian 13 flavor
## (tests/output/guest-trixie), e.g. make guest GUEST=trixie
guest: deps
	tests/guest/start.sh

guest-stop:
	tests/guest/stop.sh

## Re-pin the trixie guest's packages (tests/guest/trixie.lock) to what the archive serves now
guest-lock:
	tests/guest/trixie-debs.sh --update-lock "$${GUEST_OUT:-tests/output/guest-trixie}/cache"

clean: guest-stop
	GUEST=trixie tests/guest/stop.sh
	rm -rf tests/output .pytest_cache .hypothesis
