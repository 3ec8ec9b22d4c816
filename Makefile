# The two commands of the README, and the benchmark.
.PHONY: test bench demo

## Run fmt, clippy and the whole test suite (installs moto into .venv, starts it on a free port).
test:
	bash scripts/test.sh

## Measure rotation wall time and the rotation binary's start-up (prints ratios, asserts nothing).
bench:
	bash scripts/bench.sh

## Three rotations on this machine: embedded Google emulator, in-memory Secrets Manager.
demo:
	cargo run --locked --example local_rotation
