"""Google's own AWS workload identity federation (google-auth's `external_account` credentials)
against the emulator: proves the emulator's STS and IAM Credentials answer as Google does.

Usage: external_account.py CONFIG_FILE. AWS credentials and region come from the environment,
as in Lambda. Prints one JSON object: the token and its kind, or the error google-auth raised.
"""
import json
import sys

import google.auth.aws
import google.auth.transport.requests

try:
    # aws.Credentials directly: load_credentials_from_file would also look the project up at
    # Cloud Resource Manager, which the emulator does not serve.
    credentials = google.auth.aws.Credentials.from_file(
        sys.argv[1], scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    print(json.dumps({
        "token": credentials.token,
        "expiry": credentials.expiry.isoformat() if credentials.expiry else None,
        "kind": type(credentials).__module__ + "." + type(credentials).__name__,
    }))
except Exception as e:  # the test asserts on Google's reason
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
