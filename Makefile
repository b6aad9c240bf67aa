# Front door: `make serve` and `make test` are the README's quick start.
# The real build is CMake (CMakeLists.txt); this file installs what is missing and drives it.
JOBS       ?= $(shell nproc)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
HOST       ?= 127.0.0.1
PORT       ?= 8000
MODEL      ?= models/vlm-demo
FUZZ_SECONDS ?= 20
VENV       ?= .venv
PY         := $(VENV)/bin/python

.PHONY: all deps build asan fuzz-build serve test test-c test-asan test-fuzz test-e2e bench clean check-src

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVLM_SANITIZE=ON -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

fuzz-build: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVLM_SANITIZE=ON -DVLM_FUZZ=ON -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

serve: build
	$(BUILD)/vlm serve $(MODEL) --host $(HOST) --port $(PORT)

$(PY): scripts/requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r scripts/requirements-test.txt
	@touch $(PY)

check-src:
	@scripts/checksrc.sh

# The whole suite: source checks, C tests (plain and ASan+UBSan), a short run of every fuzz
# target, and the end-to-end tests against the real server.
test: check-src test-c test-asan test-fuzz test-e2e

test-c: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		VLM_TEST_QUICK=1 ctest --output-on-failure -j $(JOBS)

test-fuzz: fuzz-build
	@scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-e2e: build $(PY)
	VLM_BIN=$(abspath $(BUILD))/vlm $(PY) -m pytest -q tests/e2e; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

bench: build
	$(BUILD)/vlm bench

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
