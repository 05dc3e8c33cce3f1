# sluice: kernel-assisted admission control.
#
#   make            build everything (installs missing Debian packages first)
#   make demo       show sluice protecting a real server in a namespace testbed
#   make test       run every suite on the real kernel (needs root)
#   make bench      measure and write docs/benchmarks.md (QUICK=1 for a short run)
#   make fuzz-long  the long fuzzing runs (MINUTES=15 per libFuzzer target)
#
# Layout: bpf/*.bpf.c are compiled with clang and turned into skeletons with
# bpftool; userspace/ is the library behind the `sluice` binary; tests/ holds
# the unit, bpf, e2e and fuzz suites; tools/<name>/ are helper programs.
# New source files are picked up by directory; nothing here needs editing to
# add one.

SHELL := /bin/bash
.DEFAULT_GOAL := all
MAKEFLAGS += --no-builtin-rules
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(shell nproc)
endif

BUILD   ?= build
CXX     ?= g++
CLANG   ?= clang
BPFTOOL ?= bpftool
ARCH_INC := /usr/include/$(shell gcc -print-multiarch)

CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Iinclude -Iuserspace -I$(BUILD)/gen -MMD -MP
# toml++ as Debian ships it: a shared library, not header-only.
CXXFLAGS += -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1
BPF_CFLAGS := -O2 -g -Wall -target bpf -mcpu=v3 -Iinclude -I$(ARCH_INC)
LDLIBS := -lxdp -lbpf -lelf -lz -ltomlplusplus -lhiredis -lpthread
GTEST  := -lgtest_main -lgtest

# ---- sources ---------------------------------------------------------------
BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
SKELS      := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/gen/%.skel.h)

LIB_SRCS   := $(shell find userspace -name '*.cpp' ! -path 'userspace/cli/main.cpp' | sort)
LIB_OBJS   := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libsluice.a

TESTLIB_SRCS := $(wildcard tests/lib/*.cpp)
TESTLIB_OBJS := $(TESTLIB_SRCS:%.cpp=$(BUILD)/obj/%.o)
UNIT_SRCS    := $(wildcard tests/unit/*.cpp)
BPFT_SRCS    := $(wildcard tests/bpf/*.cpp)
E2E_SRCS     := $(wildcard tests/e2e/*.cpp)

TOOL_DIRS  := $(patsubst %/,%,$(dir $(wildcard tools/*/*.cpp)))
TOOL_NAMES := $(sort $(notdir $(TOOL_DIRS)))
TOOL_BINS  := $(TOOL_NAMES:%=$(BUILD)/tools/%)

BENCH_SRCS := $(wildcard bench/*.cpp)
# The benchmarks' shared pieces, which the end-to-end tests check too.
BENCH_SHARED_OBJS := $(BUILD)/obj/bench/bench.o $(BUILD)/obj/bench/netbench.o

SLUICE     := $(BUILD)/sluice
UNIT_BIN   := $(BUILD)/tests/unit_tests
BPFT_BIN   := $(BUILD)/tests/bpf_tests
E2E_BIN    := $(BUILD)/tests/e2e_tests
BENCH_BIN  := $(if $(BENCH_SRCS),$(BUILD)/bench/sluice_bench)

# ---- top-level targets -----------------------------------------------------
.PHONY: all deps build test test-unit test-bpf test-e2e test-fuzz fuzz-long demo bench clean
all: build

DEPS_STAMP := $(BUILD)/.deps-ok
deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/install-deps.sh
	@tools/install-deps.sh
	@mkdir -p $(@D) && touch $@

build: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory binaries

.PHONY: binaries
binaries: $(SLUICE) $(TOOL_BINS) $(UNIT_BIN) $(BPFT_BIN) $(E2E_BIN) $(BENCH_BIN) fuzz-binaries

test: build
	@tools/run-tests.sh $(BUILD)

test-unit test-bpf test-e2e test-fuzz: build
	@tools/run-tests.sh $(BUILD) $(@:test-%=%)

demo: build
	@tools/demo.sh $(BUILD)

bench: build
	@tools/bench.sh $(BUILD) $(if $(QUICK),--quick)

fuzz-long: build
	@tools/fuzz-long.sh $(BUILD) $(MINUTES)

clean:
	rm -rf $(BUILD)

# ---- BPF -----------------------------------------------------------------------
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) $(wildcard include/sluice/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# The skeleton embeds the object: nothing is looked up on disk at run time.
$(BUILD)/gen/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(@D)
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

# ---- C++ -----------------------------------------------------------------------
$(BUILD)/obj/%.o: %.cpp | $(SKELS)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(SLUICE): $(BUILD)/obj/userspace/cli/main.o $(LIB)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

$(UNIT_BIN): $(UNIT_SRCS:%.cpp=$(BUILD)/obj/%.o) $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST) $(LDLIBS)

$(BPFT_BIN): $(BPFT_SRCS:%.cpp=$(BUILD)/obj/%.o) $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST) $(LDLIBS)

$(E2E_BIN): $(E2E_SRCS:%.cpp=$(BUILD)/obj/%.o) $(BENCH_SHARED_OBJS) $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST) $(LDLIBS)

$(BUILD)/bench/sluice_bench: $(BENCH_SRCS:%.cpp=$(BUILD)/obj/%.o) $(TESTLIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

# tools/<name>/*.cpp -> build/tools/<name>
# Keep skeletons and BPF objects: they are intermediates make would delete.
.SECONDARY:
.SECONDEXPANSION:
# (No '%' inside the functions: make would substitute the stem there too.)
$(BUILD)/tools/%: $$(addprefix $(BUILD)/obj/,$$(addsuffix .o,$$(basename $$(wildcard tools/$$*/*.cpp)))) $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

# ---- sanitized builds: ASan + UBSan unit tests and libFuzzer targets ------------
# One clang-built copy of the library serves both. The sanitized unit tests
# are what `make test` runs; the fuzz targets are run bounded by it.
SAN_CXX   := clang++
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_CXXFLAGS := -std=c++20 -Iinclude -Iuserspace -I$(BUILD)/gen -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1 -MMD -MP \
                $(SAN_FLAGS) -fsanitize=fuzzer-no-link
SAN_LIB   := $(BUILD)/san/libsluice.a
SAN_UNIT  := $(BUILD)/san/unit_tests
FUZZ_SRCS := $(wildcard tests/fuzz/*_fuzz.cpp)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.cpp=$(BUILD)/fuzz/%)

.PHONY: fuzz-binaries
fuzz-binaries: $(SAN_UNIT) $(FUZZ_BINS)

$(BUILD)/san/obj/%.o: %.cpp | $(SKELS)
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_CXXFLAGS) -c $< -o $@

$(SAN_LIB): $(LIB_SRCS:%.cpp=$(BUILD)/san/obj/%.o)
	rm -f $@ && ar rcs $@ $^

$(SAN_UNIT): $(UNIT_SRCS:%.cpp=$(BUILD)/san/obj/%.o) $(TESTLIB_SRCS:%.cpp=$(BUILD)/san/obj/%.o) $(SAN_LIB)
	$(SAN_CXX) $(SAN_FLAGS) $^ -o $@ $(GTEST) $(LDLIBS)

$(BUILD)/fuzz/%: $(BUILD)/san/obj/tests/fuzz/%.o $(TESTLIB_SRCS:%.cpp=$(BUILD)/san/obj/%.o) $(SAN_LIB)
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_FLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
