"""Opens the Lambda zips of one architecture and checks what Lambda and template.yaml expect:
the layout, executable bits, and each binary's ELF class and machine.

usage: python3 scripts/check_package.py ARCH   (ARCH: x86_64 or arm64)
"""
import os
import stat
import sys
import zipfile

MACHINES = {"x86_64": 0x3E, "arm64": 0xB7}
EXPECTED = {
    "rotation.zip": {"bootstrap": True},
    "vertex-proxy.zip": {"bootstrap": True},
    # /opt/extensions/<name> is where Lambda starts external extensions; the template points
    # AWS_LAMBDA_EXEC_WRAPPER at /opt/vertex-broker-wrapper.
    "layer.zip": {"extensions/vertex-broker-extension": True, "vertex-broker-wrapper": False},
}


def check(arch):
    out = os.path.join(os.environ.get("CARGO_TARGET_DIR") or "target", "package", arch)
    failures, checked = [], 0
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
                info = z.getinfo(member)
                mode = info.external_attr >> 16
                if not mode & stat.S_IXUSR:
                    failures.append(f"{name}:{member}: not executable")
                head = z.read(member)[:20]
                if is_elf:
                    if head[:4] != b"\x7fELF" or head[4] != 2:
                        failures.append(f"{name}:{member}: not a 64-bit ELF")
                    machine = int.from_bytes(head[18:20], "little")
                    if machine != MACHINES[arch]:
                        failures.append(f"{name}:{member}: ELF machine {machine:#x}, expected {MACHINES[arch]:#x} ({arch})")
                elif not head.startswith(b"#!/bin/sh"):
                    failures.append(f"{name}:{member}: not a /bin/sh script")
                checked += 1
    for f in failures:
        print("FAIL", f)
    print(f"package: {checked - len(failures)} passed, {len(failures)} failed")
    return not failures


if __name__ == "__main__":
    sys.exit(0 if check(sys.argv[1] if len(sys.argv) > 1 else "x86_64") else 1)
