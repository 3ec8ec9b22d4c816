# The two commands of the README, and the benchmark.
.PHONY: test bench dev

## Run fmt, clippy and the whole test suite (installs moto into .venv, starts it on a free port).
test:
	bash scripts/test.sh

## Measure rotation wall time and the rotation binary's start-up (prints ratios, asserts nothing).
bench:
	bash scripts/bench.sh

## Everything on this machine, offline: Google emulator, in-memory secret, broker on
## 127.0.0.1:2775, a rotation every 2 minutes. Ctrl-C stops it.
dev:
	cargo run --locked --bin vertex-broker -- dev
