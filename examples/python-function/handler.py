"""A Python Lambda function that calls Vertex AI with Google's GenAI SDK and the OpenAI SDK, and
holds no credential: nothing here names vertex-broker, a key or a token.

With the vertex-broker layer, AWS_LAMBDA_EXEC_WRAPPER=/opt/vertex-broker-wrapper and
VERTEX_BROKER_TOKEN_ENDPOINTS=gateway (the SAM template's default), the wrapper points the GenAI
SDK at the broker's gateway (GOOGLE_VERTEX_BASE_URL) and google.auth.default() at its metadata
server, which hands out a token only the gateway accepts; the gateway calls Vertex with the real
one. Without the layer the same code calls Vertex directly with the function's own credentials.

Environment: GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_LOCATION (default global), MODEL (default
gemini-2.5-flash). Event: API Gateway's, with {"prompt": "..."} as the body.
"""
import json
import os

import google.auth
import google.auth.transport.requests
import openai
from google import genai

PROJECT = os.environ["GOOGLE_CLOUD_PROJECT"]
LOCATION = os.environ.get("GOOGLE_CLOUD_LOCATION", "global")
MODEL = os.environ.get("MODEL", "gemini-2.5-flash")

# Pass both project and location: given a custom base URL without them, google-genai sends no
# API path at all.
gemini = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)


def openai_client():
    """Vertex's OpenAI-compatible endpoint as Google documents it (a Google access token as the
    API key), at the base URL the GenAI SDK would use."""
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    base = os.environ.get("GOOGLE_VERTEX_BASE_URL", "https://aiplatform.googleapis.com/")
    return openai.OpenAI(
        base_url=f"{base.rstrip('/')}/v1/projects/{PROJECT}/locations/{LOCATION}/endpoints/openapi",
        api_key=credentials.token,
    )


def handler(event, context):
    prompt = json.loads(event.get("body") or "{}").get("prompt", "hello")
    answer = gemini.models.generate_content(model=MODEL, contents=prompt)
    chat = openai_client().chat.completions.create(
        model=f"google/{MODEL}", messages=[{"role": "user", "content": prompt}])
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"genai": answer.text, "openai": chat.choices[0].message.content}),
    }
