# lvdiff.thin: every entry point a developer or CI needs. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: deps test unit integration demo guest guest-stop bench bench-smoke clean

deps:
	@tests/setup/deps.sh

## make test: every test (unit tests on real thin-tools output, then real LVM in the guest)
test: deps unit

unit: deps
	$(PY) -m pytest -q tests/unit

## The QEMU guest with real LVM thin pools (tests/guest/)
guest: deps
	tests/guest/start.sh

guest-stop:
	tests/guest/stop.sh

clean:
	rm -rf tests/output .pytest_cache .hypothesis
