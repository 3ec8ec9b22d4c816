"""Sets a local Docker image's platform (its config's architecture) in place.

Docker 20.10's classic builder cannot build `FROM scratch` for another platform (`--platform`
fails: its first step's image is the host's). An image of copied files is the same on every
platform but for that field, so scripts/image.sh builds it for the host and then rewrites the
config through `docker save` and `docker load`; the layers are untouched.

usage: python3 scripts/image_platform.py IMAGE ARCHITECTURE   (ARCHITECTURE: amd64 or arm64)
"""

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile

VARIANTS = {"arm64": "v8", "amd64": None}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in VARIANTS:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    image, arch = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        saved, loaded = f"{tmp}/saved.tar", f"{tmp}/loaded.tar"
        subprocess.run(["docker", "save", "-o", saved, image], check=True)
        with tarfile.open(saved) as src, tarfile.open(loaded, "w") as dst:
            manifest = json.load(src.extractfile("manifest.json"))
            if len(manifest) != 1:
                print(f"image_platform.py: {image} saved as {len(manifest)} images, expected 1", file=sys.stderr)
                return 1
            old = manifest[0]["Config"]
            if "/" in old:
                # Docker 25 and later save an OCI layout (blobs/sha256/...), whose index also names
                # the config's digest; this rewrite knows only the older format.
                print(
                    f"image_platform.py: docker save wrote an OCI layout ({old}), which this rewrite does "
                    f"not handle; with this Docker, build the context scripts/image.sh prepared "
                    f"(target/image-cargo/context/ARCH) with BuildKit: docker buildx build --platform linux/{arch}",
                    file=sys.stderr,
                )
                return 1
            config = json.load(src.extractfile(old))
            config["architecture"] = arch
            config.pop("variant", None)
            if VARIANTS[arch]:
                config["variant"] = VARIANTS[arch]
            body = json.dumps(config, separators=(",", ":")).encode()
            new = hashlib.sha256(body).hexdigest() + ".json"
            manifest[0]["Config"] = new
            for member in src.getmembers():
                if member.name in (old, "manifest.json"):
                    continue
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            for name, data in ((new, body), ("manifest.json", json.dumps(manifest).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
        subprocess.run(["docker", "load", "--quiet", "-i", loaded], check=True, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
