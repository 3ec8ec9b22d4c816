"""Google's GenAI SDK (google-genai), unmodified, calling Vertex AI at a base URL.

Credentials come from google.auth.default(): the broker, found through GCE_METADATA_HOST and
GCE_METADATA_IP. argv: base URL, then `ok` (generate_content and generate_content_stream) or
`error` (one generate_content expected to fail), and optionally `placeholder`: the SDK is given a
fixed placeholder token instead (the broker's gateway replaces it, and with its token endpoints
off there is no other). Prints one JSON object.
"""
import json
import sys
import time

from google import genai
from google.genai import errors, types

base_url, mode = sys.argv[1], sys.argv[2]
credentials = None
if sys.argv[3:] == ["placeholder"]:
    import google.oauth2.credentials

    credentials = google.oauth2.credentials.Credentials(token="replaced-by-the-gateway")
client = genai.Client(
    vertexai=True,
    project="proj-test",
    location="us-central1",
    credentials=credentials,
    http_options=types.HttpOptions(base_url=base_url),
)
model = "gemini-2.0-flash"

if mode == "error":
    try:
        client.models.generate_content(model=model, contents="hello")
        print(json.dumps({"error": None}))
    except errors.APIError as e:
        print(json.dumps({"error": {"code": e.code, "status": e.status, "message": e.message}}))
    sys.exit(0)

answer = client.models.generate_content(model=model, contents="hello from genai")
started = time.monotonic()
chunks = []
for chunk in client.models.generate_content_stream(model=model, contents="one two three four five"):
    chunks.append({"at": time.monotonic() - started, "text": chunk.text or ""})
    usage = chunk.usage_metadata
print(json.dumps({
    "text": answer.text,
    "usage": answer.usage_metadata.total_token_count,
    "chunks": chunks,
    "stream_usage": usage.total_token_count if usage else None,
}))
