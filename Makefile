# reencryptd: `make demo` runs the demo, `make test` runs the tests, `make bench` the benchmarks.
# Both demo and test first install the system libraries when they are missing (Debian; needs root).

APT_PACKAGES := libsqlite3-dev libcurl4-openssl-dev libssl-dev zlib1g-dev
SWIFT_BUILD_FLAGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps bench-deps build release test demo bench clean

# The benchmarks' own tools: wrk drives the simulator, sqlite3 and time give the submit baseline, boto3 the engine's.
BENCH_APT_PACKAGES := wrk sqlite3 time curl
# boto3 counts as present when Python can import it, however it was installed (pip or apt).
BENCH_PYTHON_CHECK := python3 -c 'import boto3' 2>/dev/null || echo python3-boto3

# Installs packages only if one is missing; `apt-get update` first, since a fresh machine's lists may be empty.
define apt_install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	missing="$$missing $$($(2))"; missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
endef

deps:
	$(call apt_install_missing,$(APT_PACKAGES),true)

bench-deps:
	$(call apt_install_missing,$(BENCH_APT_PACKAGES),$(BENCH_PYTHON_CHECK))

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

release: deps
	swift build -c release $(SWIFT_BUILD_FLAGS)

test: deps
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build $(SWIFT_BUILD_FLAGS)

demo: release
	.build/release/reencryptd demo

bench: release bench-deps
	bash scripts/bench.sh

clean:
	rm -rf .build
