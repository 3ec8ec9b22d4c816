"""Function code as it is written without the broker: no base URL, no credential, nothing of
vertex-broker's. Run under the layer's exec wrapper, which points the SDKs at the broker.

argv: project, location, Gemini model, Claude model. Prints one JSON object: what each SDK
answered, and the token google.auth.default() was handed (the gateway token).
"""
import json
import sys

import google.auth
import google.auth.transport.requests
from anthropic import AnthropicVertex
from google import genai

project, location, gemini, claude = sys.argv[1:5]

client = genai.Client(vertexai=True, project=project, location=location)
answer = client.models.generate_content(model=gemini, contents="zero code genai")

message = AnthropicVertex().messages.create(  # CLOUD_ML_REGION, ANTHROPIC_VERTEX_PROJECT_ID
    model=claude, max_tokens=32, messages=[{"role": "user", "content": "zero code claude"}])

credentials, _ = google.auth.default()
credentials.refresh(google.auth.transport.requests.Request())
print(json.dumps({"genai": answer.text, "claude": message.content[0].text, "token": credentials.token}))
