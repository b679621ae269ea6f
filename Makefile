# The two commands a user needs are `make demo` and `make test`; both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: build build-profiling test demo bench soak lint erlang otp-roots clean-otp-roots cargo-test pytest clean \
	fuzz wheel sdist docs

$(VENV)/.tools: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "maturin>=1.7,<2" "pytest>=8" "pytest-benchmark>=4" "pytest-timeout>=2" \
		"hypothesis>=6" "ruff>=0.6" "mypy>=1.10" "matplotlib>=3.7"
	touch $@

# Builds the extension in release mode into .venv (editable: python/ stays the source).
build: $(VENV)/.tools
	$(VPY) -m maturin develop --release -q

# The same, with line-level debug info for profilers (the release wheel has none).
build-profiling: $(VENV)/.tools
	$(VPY) -m maturin develop --profile profiling -q

# -- release artifacts: dist/ ------------------------------------------------------------------
# One abi3 wheel for every CPython >= 3.10 on Linux with glibc >= 2.17 (manylinux2014): zig,
# from PyPI, links against that glibc. Built in a target directory of its own, since zig
# compiles the C code of aws-lc with other flags than `make build` does.
DIST := $(CURDIR)/dist
WHEEL_COMPAT := manylinux2014
WHEEL_GLIBC := manylinux_2_17
WHEEL_TARGET_DIR := $(CURDIR)/target/wheel
DOCS_OUT := $(CURDIR)/build/docs

$(VENV)/.release-tools: $(VENV)/.tools
	$(VPY) -m pip install -q "ziglang>=0.13" "auditwheel>=6" "pdoc>=15"
	touch $@

# zig links LLVM's libunwind into the extension for `-lgcc_s`; glibc's pthread_exit (which
# Python < 3.14 calls on threads that touch it during interpreter exit) unwinds with libgcc_s,
# and the two unwinders mixed crash the process. Linking libgcc_s itself (a manylinux library)
# makes the extension use the system's unwinder, as a gcc build does.
LIBGCC_S := $(shell gcc -print-file-name=libgcc_s.so.1 2>/dev/null)

# auditwheel checks the tag the wheel claims: only glibc symbols up to 2.17, no other library.
wheel: $(VENV)/.release-tools
	@[ -f "$(LIBGCC_S)" ] || { echo "libgcc_s.so.1 not found (gcc -print-file-name)"; exit 1; }
	rm -f $(DIST)/erlnode-*.whl
	CARGO_TARGET_DIR=$(WHEEL_TARGET_DIR) $(VPY) -m maturin build --release --zig \
		--compatibility $(WHEEL_COMPAT) --out $(DIST) -- -C link-arg=$(LIBGCC_S)
	@$(VPY) -m auditwheel show $(DIST)/erlnode-*.whl | tee $(WHEEL_TARGET_DIR)/auditwheel.txt
	@tr -s ' \n' ' ' < $(WHEEL_TARGET_DIR)/auditwheel.txt | grep -q 'constrains the platform tag to "$(WHEEL_GLIBC)_' \
		|| { echo "the wheel is not $(WHEEL_GLIBC)"; exit 1; }
	@cd $(DIST) && unzip -l erlnode-*.whl | grep '\.so$$'

sdist: $(VENV)/.tools
	rm -f $(DIST)/erlnode-*.tar.gz
	$(VPY) -m maturin sdist --out $(DIST)

# The API reference, from the docstrings, into build/docs (not committed). Any warning pdoc
# gives (a broken reference, a docstring it cannot read) fails the target.
docs: build $(VENV)/.release-tools
	rm -rf $(DOCS_OUT)
	$(VPY) -W error -m pdoc --docformat restructuredtext -o $(DOCS_OUT) \
		erlnode erlnode.compat.py_interface
	@echo "API reference: $(DOCS_OUT)/index.html"

# Erlang/OTP from Debian when `erl` is missing, and Elixir for the GenServer.call test.
erlang:
	@command -v erl >/dev/null 2>&1 && command -v elixir >/dev/null 2>&1 || { \
		echo "installing Erlang/OTP (erlang-nox) and Elixir from Debian"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q erlang-nox elixir; }

# The other Erlang/OTP releases the interop tests run against (tests/erl.py): minimal Debian
# roots, trixie (OTP 27) and sid (the newest), built once by scripts/otp_root.sh with
# debootstrap from the mirror apt uses here, cached outside the repository, run with chroot.
# A root is built again when its `<suite>.done` stamp is missing; `make clean-otp-roots` drops
# them all (sid moves on).
OTP_ROOTS ?= $(HOME)/.cache/erlnode/otp-roots
OTP_SUITES := trixie sid
DEBIAN_MIRROR ?= http://deb.debian.org/debian
export ERLNODE_OTP_ROOTS := $(OTP_ROOTS)

otp-roots: $(foreach suite,$(OTP_SUITES),$(OTP_ROOTS)/$(suite).done)

$(OTP_ROOTS)/%.done:
	@command -v debootstrap >/dev/null 2>&1 || { \
		echo "installing debootstrap from Debian"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q debootstrap; }
	$(SUDO) scripts/otp_root.sh $* $(OTP_ROOTS) $(DEBIAN_MIRROR)

clean-otp-roots:
	$(SUDO) rm -rf --one-file-system $(OTP_ROOTS)

cargo-test:
	cargo test --quiet

pytest: build erlang otp-roots
	$(VPY) -m pytest -q

# Lint first: a formatting or typing slip fails in seconds, not after the suite.
test: lint build erlang cargo-test wheel sdist pytest

demo: build erlang
	$(VPY) examples/messenger/demo.py

# The Python codecs compared with ours, and the peers measured beside erlnode (Jinterface from
# Debian, compiled against by benches/run.py with javac; erldistpy from PyPI, pinned because
# its remote uses the library's lower-level pieces), are bench-only tools.
bench: build erlang
	@pkgs=""; \
	ls /usr/share/java/OtpErlang.jar /usr/lib/erlang/lib/jinterface-*/priv/OtpErlang.jar \
		2>/dev/null | grep -q . || pkgs="erlang-jinterface"; \
	command -v javac >/dev/null 2>&1 || pkgs="$$pkgs default-jdk-headless"; \
	command -v valgrind >/dev/null 2>&1 || pkgs="$$pkgs valgrind"; \
	command -v openssl >/dev/null 2>&1 || pkgs="$$pkgs openssl"; \
	[ -z "$$pkgs" ] || { \
		echo "installing $$pkgs from Debian (the Jinterface peer, callgrind instruction counts, TLS certificates)"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$pkgs; }
	$(VPY) -m pip install -q erlpack earl-etf erlang-py erldistpy==0.1.7
	$(VPY) benches/run.py
	$(VPY) benches/tls.py --write
	$(VPY) benches/bench_codec.py 5 --write
	$(VPY) benches/bulk_memory.py
	$(VPY) benches/resources.py --write
	$(VPY) benches/pool.py --write
	$(VPY) benches/logging_flood.py --write
	@if command -v valgrind >/dev/null; then $(VPY) benches/instructions.py --write; \
		else echo "valgrind not installed: instruction counts (benches/instructions.py) skipped"; fi

# A fuzzing campaign (nightly Rust and cargo-fuzz, installed when missing; see fuzz/README.md):
# each target in turn for FUZZ_SECONDS, one process, at low priority; its corpus grows in
# fuzz/corpus/<target> and is minimised afterwards. Prints executions and coverage per target.
# A crash stops the run; the input is in fuzz/artifacts/<target>/, the log in fuzz/logs/.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= etf handshake handshake_messages dist_frames epmd
FUZZ_FLAGS := -max_len=4096 -timeout=10 -print_final_stats=1
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
	nice -n 10 cargo +nightly fuzz build
	@mkdir -p fuzz/logs
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzzing $$t for $(FUZZ_SECONDS) s (log: fuzz/logs/$$t.log)"; \
		nice -n 10 cargo +nightly fuzz run $$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) > fuzz/logs/$$t.log 2>&1 \
			|| { tail -n 60 fuzz/logs/$$t.log; echo "fuzz target $$t failed"; exit 1; }; \
		nice -n 10 cargo +nightly fuzz cmin $$t fuzz/corpus/$$t -- $(FUZZ_FLAGS) \
			> fuzz/logs/$$t.cmin.log 2>&1 \
			|| { tail -n 60 fuzz/logs/$$t.cmin.log; echo "minimising $$t failed"; exit 1; }; \
	done
	@echo; echo "target              executions      cov       ft   corpus"
	@for t in $(FUZZ_TARGETS); do \
		execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' fuzz/logs/$$t.log); \
		cov=$$(grep -o 'DONE *cov: [0-9]* ft: [0-9]*' fuzz/logs/$$t.log | awk '{print $$3, $$5}'); \
		files=$$(ls fuzz/corpus/$$t | wc -l); bytes=$$(cat fuzz/corpus/$$t/* | wc -c); \
		printf '%-18s %11s %8s %8s   %s files, %s bytes\n' $$t "$$execs" $$cov "$$files" "$$bytes"; \
	done

# The long versions of the load and fault tests (`make test` runs them shorter): 2,000,000
# messages each way with none lost (tests/test_load.py), 16 peers coming and going for a
# minute with no leak (tests/test_faults.py), then 10 minutes of steady traffic with RSS read
# every second (benches/soak.py: docs/soak.png and its section of BENCHMARKS.md). E.g.
# `make soak SOAK_MINUTES=2` for a shorter one.
SOAK_MINUTES ?= 10
SOAK_MESSAGES ?= 2000000
SOAK_CHURN_SECONDS ?= 60
soak: build erlang
	ERLNODE_LOAD_MESSAGES=$(SOAK_MESSAGES) ERLNODE_CHURN_SECONDS=$(SOAK_CHURN_SECONDS) \
		$(VPY) -m pytest -q -s tests/test_load.py \
		tests/test_faults.py::test_sixteen_peers_coming_and_going_leak_nothing
	$(VPY) benches/soak.py --minutes $(SOAK_MINUTES) --write

# stubtest compares the hand-written _erlnode.pyi with the built extension: hence `build`.
lint: build docs
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	$(VPY) -m ruff check python tests benches examples scripts tools
	$(VPY) -m ruff format --check python tests benches examples scripts tools
	$(VPY) -m mypy python
	$(VPY) -m mypy.stubtest erlnode._erlnode

clean:
	rm -rf target $(VENV) python/erlnode/*.so
