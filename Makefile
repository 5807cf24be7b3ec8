# roboflare_bridge workspace: `make demo` and `make test` do all set-up on a fresh machine.
#   make test [DISTRO=jazzy|kilted]   set up .venv/$(DISTRO)-<python> and run every test
#                                     (PYTHON=python3.12 for another interpreter)
#   make demo [DURATION=seconds]      set up and run the bridge against the emulator
#   make bench [DISTRO=...]           benchmarks, ~18 min (not part of make test);
#                                     BENCH_ARGS="--parts fleet" reruns one part
DISTRO ?= jazzy
PYTHON ?= python3
export PYTHON
VENV := .venv/$(DISTRO)-$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY := $(VENV)/bin/python
DURATION ?= 0
PYTEST_ARGS ?=
BENCH_ARGS ?=

# DDS stays on this machine (no multicast out of the network interface), on a domain of its
# own per run unless the caller chose one.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 90 + 100 )))
# The bridge's tests mostly wait on sockets and processes: two pytest-xdist workers (each on
# a DDS domain of its own, ROS_DOMAIN_ID + 40 x worker), a test module per worker at a time.
TEST_WORKERS ?= 2

.PHONY: setup test demo bench lint clean
setup:
	@scripts/setup.sh $(DISTRO)

test: setup
	@echo "==> tests on ROS 2 $(DISTRO) (ROS_DOMAIN_ID=$$ROS_DOMAIN_ID)"
	@status=0; \
	(cd roboflare_dev && ../$(PY) -m pytest $(PYTEST_ARGS)) || status=$$?; \
	(cd roboflare_bridge && ../$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile \
	  $(PYTEST_ARGS)) || status=$$?; \
	exit $$status

demo: setup
	$(VENV)/bin/demo --duration $(DURATION)

bench: setup
	DISTRO=$(DISTRO) $(PY) bench/run.py --out bench-results/$(DISTRO) $(BENCH_ARGS)

lint: setup
	cd roboflare_dev && ../$(PY) -m pytest -m linter
	cd roboflare_bridge && ../$(PY) -m pytest -m linter  # mypy among them

clean:
	rm -rf .venv build
