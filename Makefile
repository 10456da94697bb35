# The user's interface to siyu. `make demo` and `make test` do all the setup on Debian 12.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
SIYU       := $(BUILD)/src/apps/siyu

.PHONY: all deps build console demo test bench asan format clean

all: build console

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD) -j $(JOBS) | grep -v '^\[' || true
	@test -x $(SIYU)

console: deps
	@scripts/build-console.sh

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSIYU_SANITIZE=ON \
	  -DSIYU_ONLY_UNIT=ON >/dev/null
	@ninja -C $(ASAN_BUILD) -j $(JOBS) | grep -v '^\[' || true

# Builds everything, then starts siyu on ./demo-data with a demo brand on http://127.0.0.1:8080/.
demo: build console
	@$(SIYU) demo --data ./demo-data --port $${PORT:-8080}

# Unit tests (also under ASan + UBSan), integration tests on SQLite and PostgreSQL, browser tests.
test: build console asan
	@scripts/test.sh

bench: build
	@scripts/bench.sh

format:
	@clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) console/dist
