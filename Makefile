# The README's commands and the benchmark. (sam builds the broker layer with layer/Makefile.)
.PHONY: test bench dev package fuzz image

## Run fmt, clippy, the template linters and the whole test suite (installs its Python tools
## into .venv, starts moto on a free loopback port).
test:
	bash scripts/test.sh

## Measure rotation and broker performance (prints ratios, asserts nothing).
bench:
	bash scripts/bench.sh

## Coverage-guided fuzzing of the metadata and gateway request handling and the key parser (nightly,
## cargo fuzz; installs both). FUZZ_SECONDS per target, default 60.
fuzz:
	bash scripts/fuzz.sh

## Everything on this machine, offline: Google emulator, in-memory secret, broker on
## 127.0.0.1:2775, a rotation every 2 minutes. Ctrl-C stops it. Options as make variables
## (make reads `--port` as its own): make dev PORT=2780 ROTATE_EVERY=30s KEYLESS=1
PORT ?=
ROTATE_EVERY ?=
KEYLESS ?=
dev:
	cargo run --locked --bin vertex-broker -- dev $(if $(PORT),--port $(PORT)) \
		$(if $(ROTATE_EVERY),--rotate-every $(ROTATE_EVERY)) $(if $(KEYLESS),--keyless)

## Lambda zips in target/package/ARCH/: the rotation function, the broker layer, the example.
## ARCH=x86_64 or ARCH=arm64 (scripts/rust-for-target.sh installs a missing standard library).
ARCH ?= x86_64
package:
	bash scripts/package.sh $(ARCH)

## The container image vertex-broker:dev (IMAGE=name:tag to rename, ARCH=x86_64 or arm64): static
## musl binaries in FROM scratch, built with Docker's classic builder; starts Docker's daemon if
## none answers.
IMAGE ?= vertex-broker:dev
image:
	bash scripts/docker.sh
	IMAGE=$(IMAGE) bash scripts/image.sh $(ARCH)
