"""cfn-lint on template.yaml once per combination of Minting, CredentialSource and
ImpersonateServiceAccount: each variant sets those parameters' defaults (and a CredentialConfig
where Federation needs one), so the linter sees that deployment as it would be made.

usage: python3 scripts/lint_template.py   (from the repository root, with cfn-lint on PATH)
"""
import itertools
import re
import subprocess
import sys
import tempfile

COMBINATIONS = {
    "Minting": ["PerEnvironment", "Central"],
    "CredentialSource": ["RotatedKey", "Federation"],
    "ImpersonateServiceAccount": ["", "vertex@proj.iam.gserviceaccount.com"],
}
CONFIG = '{"type":"external_account","audience":"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws"}'


def with_default(text, parameter, value):
    """`text` with `parameter`'s Default replaced by (or set to) `value`."""
    block = re.compile(rf"(\n  {parameter}:\n    Type: String\n)(    Default: [^\n]*\n)?")
    match = block.search(text)
    if not match:
        sys.exit(f"template.yaml has no String parameter {parameter}")
    quoted = value.replace("'", "''")
    return text[: match.start()] + match.group(1) + f"    Default: '{quoted}'\n" + text[match.end() :]


def main():
    template = open("template.yaml").read()
    failed = []
    for values in itertools.product(*COMBINATIONS.values()):
        chosen = dict(zip(COMBINATIONS, values))
        variant = template
        for parameter, value in chosen.items():
            variant = with_default(variant, parameter, value)
        if chosen["CredentialSource"] == "Federation":
            variant = with_default(variant, "CredentialConfig", CONFIG)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=".", delete=True) as f:
            f.write(variant)
            f.flush()
            done = subprocess.run(["cfn-lint", f.name], capture_output=True, text=True)
        label = ", ".join(f"{k}={v or '(none)'}" for k, v in chosen.items())
        print(f"cfn-lint {label}: {'clean' if done.returncode == 0 else 'FAILED'}")
        if done.returncode != 0:
            failed.append((label, done.stdout + done.stderr))
    for label, output in failed:
        print(f"--- {label}\n{output}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
