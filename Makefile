# Makefile -- the two set-up commands and a few conveniences around meson.
#   make run    install what is missing, build, run dnsmux on its embedded default
#   make test   install what is missing, build with ASan+UBSan, run every test
#   make fuzz   install clang, build the libFuzzer targets, run each FUZZ_SECONDS (fuzz/README.md)
#   make package-test  install dpkg-dev/lintian/..., build the .deb in a copy of the tree and check it
.PHONY: all build run test unit integration bench clean fuzz package package-test

BUILD ?= build
ASAN ?= build-asan
TSAN ?= build-tsan
FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
PYTEST = /usr/bin/python3 -m pytest

all: build

build:
	./scripts/install-deps build
	[ -d $(BUILD) ] || meson setup $(BUILD) --buildtype=release
	ninja -C $(BUILD)

run: build
	./$(BUILD)/dnsmux $(ARGS)

$(ASAN)/build.ninja:
	meson setup $(ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

$(TSAN)/build.ninja:
	meson setup $(TSAN) --buildtype=debug -Db_sanitize=thread -Db_lundef=false

test:
	./scripts/install-deps test
	$(MAKE) $(ASAN)/build.ninja
	ninja -C $(ASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN) --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		DNSMUX_BIN=$(CURDIR)/$(ASAN)/dnsmux DNSMUX_TEST_MARGIN=2 \
		$(PYTEST) tests/integration
	# ThreadSanitizer on the multi-worker tests (workers share TLS tickets and counters; a reload hands them a
	# snapshot; the control socket reads the counters and flushes the cache beside them)
	$(MAKE) $(TSAN)/build.ninja
	ninja -C $(TSAN) dnsmux dnsmux-ctl
	DNSMUX_BIN=$(CURDIR)/$(TSAN)/dnsmux DNSMUX_TEST_MARGIN=3 $(PYTEST) tests/integration/test_threads.py tests/integration/test_reload.py tests/integration/test_metrics.py tests/integration/test_querylog.py tests/integration/test_control.py

$(FUZZ)/build.ninja:
	CC=clang meson setup $(FUZZ) --buildtype=debugoptimized -Dfuzz=true -Db_lundef=false

fuzz:
	./scripts/install-deps fuzz
	$(MAKE) $(FUZZ)/build.ninja
	ninja -C $(FUZZ) fuzz-targets
	./fuzz/run $(FUZZ) $(FUZZ_SECONDS)

# The Debian package (debian/): built from a copy of the tree by
# tests/packaging/run, which lists and checks its contents, runs lintian,
# blhc and hardening-check, and runs the packaged binary; the .deb is left
# in PKG_OUT for 'make package'.
PKG_OUT ?= $(CURDIR)/build-deb

package-test:
	./scripts/install-deps package
	./tests/packaging/run

package:
	./scripts/install-deps package
	rm -rf $(PKG_OUT) && mkdir -p $(PKG_OUT)
	PKG_OUT=$(PKG_OUT) ./tests/packaging/run

bench:
	./scripts/install-deps bench
	./bench/run $(ARGS)

clean:
	rm -rf $(BUILD) $(ASAN) $(TSAN)
