"""Google's own Python client against the broker: google.auth.default(), refresh, ID token.

Prints one JSON object; the Rust test checks it against the emulator. GCE_METADATA_HOST and
GCE_METADATA_IP point at the broker, exactly as the layer's wrapper sets them.
"""
import json
import sys

import google.auth
import google.auth.transport.requests
import google.oauth2.id_token

audience = sys.argv[1]
credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
request = google.auth.transport.requests.Request()
credentials.refresh(request)
id_token = google.oauth2.id_token.fetch_id_token(request, audience)
print(json.dumps({
    "project": project,
    "email": credentials.service_account_email,
    "token": credentials.token,
    "expiry": credentials.expiry.isoformat() if credentials.expiry else None,
    "id_token": id_token,
    "kind": type(credentials).__module__ + "." + type(credentials).__name__,
}))
