# netobs — the two commands in README.md are `make demo` and `make test`, run as root (no sudo needed).
# Each does all of its own setup on a fresh Debian 12 machine (idempotent).

SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
NETOBS := $(VENV)/bin/netobs
# Debian's python3-bpfcc is built for the system interpreter; the venv uses it too.
SYSPY := /usr/bin/python3
DEB_PKGS := python3-bpfcc python3-venv python3-dev gcc linux-perf iproute2 iperf3 liburing-dev \
            linux-headers-amd64 bpftool
TEST_DEB_PKGS := chromium chromium-driver openssh-server openssh-client
STAMP := $(VENV)/.netobs-installed
SOURCES := pyproject.toml setup.py $(wildcard native/*.c native/*.h native/*.py)

DEMO_OUT ?= results/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup deps test-deps test unit integration demo bench bench-scale clean golden

# (compileall: netobs's bytecode written once, so a shell that sets PYTHONDONTWRITEBYTECODE does not
# recompile every module in every process: ~0.16 s of each command's start)
setup: deps $(STAMP)
	@$(PY) -m compileall -q netobs analysis bpf >/dev/null

# System packages (root). Only touches apt when something is missing.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

test-deps:
	@missing=$$(for p in $(TEST_DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the browser test:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Editable install: the cffi extension is built by the package build (setup.py cffi_modules).
$(STAMP): $(SOURCES)
	@test -x $(PY) || $(SYSPY) -m venv $(VENV)
	@mkdir -p $(VENV)/debian-bcc && ln -sfn /usr/lib/python3/dist-packages/bcc $(VENV)/debian-bcc/bcc
	@echo "$(abspath $(VENV))/debian-bcc" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/debian-bcc.pth
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -c 'import bcc, netobs._workers' 
	@touch $(STAMP)

# The README's test command. As root every capability of this host is exercised; under CI
# (CI=true) a capability skip is a failure. NETOBS_TESTS=deep: the property tests and the stop
# stress at their full counts (the unit tier runs a fraction: tests/conftest.py `deep`).
test: setup test-deps
	NETOBS_TESTS=deep $(PY) -m pytest -q tests

# The tiers (tests/conftest.py): unit (no root, no program started: under 60 s, on every core:
# its tests share nothing but read-only fixtures), integration (starts programs: the CLI, the C
# workers, a browser; no root), root (`make test` runs all three, one at a time: they measure).
unit: setup
	$(PY) -m pytest -q -n auto tests -m 'not root and not integration'

integration: setup test-deps
	$(PY) -m pytest -q tests -m 'integration and not root'

# Regenerate the golden facts (tests/fixtures/golden/explain/*.json) and the reviewed text
# snapshots (*.txt): only deliberately; commit the diff with the reason.
golden: setup
	$(PY) tests/golden_regen.py

# The README's main command: a short sweep with tracing, then the report.
demo: setup
	$(NETOBS) sweep --strategies two_copy,one_copy,zero_copy --sizes 4096,65536 --threads 1,2 \
	  --duration 1 --warmup 0.3 --trace --profile -o $(DEMO_OUT)
	$(NETOBS) explain --diff-profiles $(DEMO_OUT)
	$(NETOBS) report $(DEMO_OUT) -o $(DEMO_OUT)/report.html
	@echo "results: $(DEMO_OUT)"; echo "report:  $(DEMO_OUT)/report.html"

bench: setup
	$(PY) -m netobs.bench

# the bench's scale section alone (explain/compare/report of generated 10,000- and 100,000-point
# stores; the report of a 48-point traced and profiled sweep, swept here as root)
bench-scale: setup
	$(PY) -m netobs.bench --scale-only

clean:
	rm -rf $(VENV) build *.egg-info netobs/_workers*.so netobs/_workers.c
