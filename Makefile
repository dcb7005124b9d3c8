# msb: the two commands a newcomer needs are `make run` and `make test`; both install and build
# everything they need first (scripts/setup).

BUILD ?= build
CMAKE_FLAGS ?=
CTEST_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all setup configure build run test lint bench asan tsan fuzz clean

all: build

setup:
	@scripts/setup

$(BUILD)/build.ninja:
	@scripts/setup --packages
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: setup configure
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/msb run -- uname -a

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

lint: configure
	@scripts/lint $(BUILD)

bench:
	@scripts/bench

asan:
	$(MAKE) BUILD=build-asan CMAKE_FLAGS="-DMSB_SANITIZE=address" test

tsan:
	$(MAKE) BUILD=build-tsan CMAKE_FLAGS="-DMSB_SANITIZE=thread" test

# Every libFuzzer target, 60 s each, in build-fuzz (clang-14); `make test` runs them 10 s each.
# FUZZ_FLAGS: more scripts/fuzz arguments, e.g. FUZZ_FLAGS="--seconds 600 block_fuzz".
BUILD_FUZZ ?= build-fuzz
FUZZ_FLAGS ?=
fuzz:
	@scripts/setup --packages
	@BUILD_FUZZ=$(BUILD_FUZZ) scripts/fuzz $(FUZZ_FLAGS)

clean:
	rm -rf build build-asan build-tsan build-release build-fuzz
