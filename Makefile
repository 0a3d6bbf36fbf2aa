# reencryptd: `make demo` runs the demo, `make test` runs the tests, `make bench` the benchmarks.
# Both demo and test first install the system libraries when they are missing (Debian; needs root).

APT_PACKAGES := libsqlite3-dev libcurl4-openssl-dev libssl-dev zlib1g-dev
SWIFT_BUILD_FLAGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build release test demo bench clean

# Installs the -dev packages only if one is missing; `apt-get update` first, since a fresh machine's lists may be empty.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

release: deps
	swift build -c release $(SWIFT_BUILD_FLAGS)

test: deps
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build $(SWIFT_BUILD_FLAGS)

demo: release
	.build/release/reencryptd demo

bench: release
	bash scripts/bench.sh

clean:
	rm -rf .build
