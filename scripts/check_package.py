"""Opens the Lambda zips of one architecture and checks what Lambda and template.yaml expect:
the layout, executable bits, each binary's ELF class and machine, that it needs no newer glibc
than Lambda's provided.al2023 runtime has (2.34), and that it runs: started outside Lambda, each
must exit 1 saying AWS_LAMBDA_RUNTIME_API is not set (a foreign architecture runs under
qemu-user with that architecture's glibc from Debian: qemu-user-static and libc6:arm64 or
libc6:amd64, which scripts/test.sh installs).

usage: python3 scripts/check_package.py ARCH   (ARCH: x86_64 or arm64)
       python3 scripts/check_package.py --sam-build ARCH BUILD_DIR   (the binaries `sam build` wrote)
"""
import os
import platform
import re
import stat
import subprocess
import sys
import tempfile
import zipfile

MACHINES = {"x86_64": 0x3E, "arm64": 0xB7}
# glibc of Amazon Linux 2023, which the provided.al2023 runtime runs on.
RUNTIME_GLIBC = (2, 34)
# How to run a binary of each architecture on this machine.
QEMU = {"x86_64": "qemu-x86_64-static", "arm64": "qemu-aarch64-static"}
HOST = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())


EXPECTED = {
    "rotation.zip": {"bootstrap": True},
    "minter.zip": {"bootstrap": True},
    "vertex-proxy.zip": {"bootstrap": True},
    # /opt/extensions/<name> is where Lambda starts external extensions; the template points
    # AWS_LAMBDA_EXEC_WRAPPER at /opt/vertex-broker-wrapper.
    "layer.zip": {"extensions/vertex-broker-extension": True, "vertex-broker-wrapper": False},
}
# What `sam build` writes into its build directory (True: an ELF binary).
SAM_BUILD = {
    "RotationFunction/bootstrap": True,
    "MinterFunction/bootstrap": True,
    "VertexProxyFunction/bootstrap": True,
    "BrokerLayer/extensions/vertex-broker-extension": True,
    "BrokerLayer/vertex-broker-wrapper": False,
}


def elf_machine_problems(arch, data):
    """What is wrong with `data` as a 64-bit ELF for `arch`, as a list."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return ["not a 64-bit ELF"]
    machine = int.from_bytes(data[18:20], "little")
    if machine != MACHINES[arch]:
        return [f"ELF machine {machine:#x}, expected {MACHINES[arch]:#x} ({arch})"]
    return []


def binary_problems(arch, data):
    """Machine, the glibc versions it needs, and a run outside Lambda."""
    problems = elf_machine_problems(arch, data)
    if problems:
        return problems
    # The version names a binary needs are strings in its .dynstr section.
    needed = {(2, int(m)) for m in re.findall(rb"GLIBC_2\.(\d+)", data)}
    if not needed:
        problems.append("names no GLIBC_ version (not a glibc dynamic binary?)")
    elif max(needed) > RUNTIME_GLIBC:
        problems.append(f"needs glibc 2.{max(needed)[1]}, the runtime has 2.{RUNTIME_GLIBC[1]}")
    problem = run_outside_lambda(arch, data)
    if problem:
        problems.append(problem)
    return problems


def run_outside_lambda(arch, data):
    """Runs the binary with an empty environment; returns what is wrong, or None."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "binary")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755)
        command = [path] if arch == HOST else [QEMU[arch], path]
        try:
            done = subprocess.run(command, env={}, capture_output=True, timeout=60)
        except FileNotFoundError as e:
            return f"cannot run it: {e} (scripts/test.sh installs qemu-user-static and the glibc)"
        except subprocess.TimeoutExpired:
            return "outside Lambda: still running after 60 s (it should stop at once)"
        stderr = done.stderr.decode(errors="replace")
        if done.returncode != 1 or "AWS_LAMBDA_RUNTIME_API is not set" not in stderr:
            return f"outside Lambda: exit {done.returncode}, stderr {stderr[:300]!r}"
    return None


def member_problems(arch, z, member, is_elf):
    problems = []
    if not (z.getinfo(member).external_attr >> 16) & stat.S_IXUSR:
        problems.append("not executable")
    data = z.read(member)
    if is_elf:
        problems += binary_problems(arch, data)
    elif not data.startswith(b"#!/bin/sh"):
        problems.append("not a /bin/sh script")
    return problems


def check(arch):
    out = os.path.join(os.environ.get("CARGO_TARGET_DIR") or "target", "package", arch)
    failures, passed = [], 0
    for name, members in EXPECTED.items():
        path = os.path.join(out, name)
        if not os.path.exists(path):
            failures.append(f"{path}: missing (run scripts/package.sh {arch})")
            continue
        with zipfile.ZipFile(path) as z:
            names = sorted(z.namelist())
            if names != sorted(members):
                failures.append(f"{name}: holds {names}, expected {sorted(members)}")
                continue
            for member, is_elf in members.items():
                problems = member_problems(arch, z, member, is_elf)
                failures += [f"{name}:{member}: {p}" for p in problems]
                passed += not problems
    return report("package", passed, failures)


def check_sam_build(arch, build_dir):
    """What `sam build` wrote: present, executable, binaries for `arch`."""
    failures, passed = [], 0
    for artifact, is_elf in SAM_BUILD.items():
        path = os.path.join(build_dir, artifact)
        if not os.access(path, os.X_OK):
            failures.append(f"{artifact}: missing or not executable")
            continue
        with open(path, "rb") as f:
            problems = elf_machine_problems(arch, f.read(20)) if is_elf else []
        failures += [f"{artifact}: {p}" for p in problems]
        passed += not problems
    return report("sam build", passed, failures)


def report(what, passed, failures):
    for f in failures:
        print("FAIL", f)
    print(f"{what}: {passed} passed, {len(failures)} failed")
    return not failures


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sam-build":
        sys.exit(0 if check_sam_build(sys.argv[2], sys.argv[3]) else 1)
    sys.exit(0 if check(sys.argv[1] if len(sys.argv) > 1 else "x86_64") else 1)
