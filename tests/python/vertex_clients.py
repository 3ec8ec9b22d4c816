"""Vertex's popular clients, unmodified, against a base URL: Google's GenAI SDK (its whole
Vertex surface), the OpenAI SDK (Vertex's OpenAI-compatible endpoint) and Anthropic's
AnthropicVertex. Credentials come from google.auth.default(): the broker, through
GCE_METADATA_HOST and GCE_METADATA_IP, as the layer's wrapper sets them.

argv: client (`genai`, `openai`, `anthropic`), base URL, project, location, model. Prints one
JSON object of what each call returned; a client error is printed as {"error": ...}.
"""
import json
import sys

client_name, base_url, project, location, model = sys.argv[1:6]


def genai_surface():
    from google import genai
    from google.genai import types

    client = genai.Client(vertexai=True, project=project, location=location,
                          http_options=types.HttpOptions(base_url=base_url))
    out = {}
    answer = client.models.generate_content(model=model, contents="hello surface")
    out["text"] = answer.text
    out["usage"] = answer.usage_metadata.total_token_count
    out["stream"] = "".join(c.text or "" for c in client.models.generate_content_stream(model=model, contents="one two"))
    out["count"] = client.models.count_tokens(model=model, contents="three little words").total_tokens
    embedded = client.models.embed_content(model="gemini-embedding-001", contents="embed these four words")
    out["embedding"] = embedded.embeddings[0].values
    out["model_name"] = client.models.get(model=model).name
    cache = client.caches.create(model=model, config=types.CreateCachedContentConfig(
        contents=[types.Content(role="user", parts=[types.Part(text="a long prompt to reuse")])],
        display_name="surface", ttl="600s"))
    out["cache_name"] = cache.name
    out["cache_got"] = client.caches.get(name=cache.name).display_name
    out["cache_listed"] = [c.name for c in client.caches.list()]
    updated = client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="1200s"))
    out["cache_updated"] = updated.expire_time.isoformat() if updated.expire_time else None
    client.caches.delete(name=cache.name)
    out["cache_after_delete"] = [c.name for c in client.caches.list()]
    job = client.batches.create(model=model, src="gs://bucket/in.jsonl",
                                config=types.CreateBatchJobConfig(dest="gs://bucket/out"))
    out["job_name"] = job.name
    out["job_state"] = str(client.batches.get(name=job.name).state)
    client.batches.cancel(name=job.name)
    out["job_after_cancel"] = str(client.batches.get(name=job.name).state)
    operation = client.models.generate_videos(model="veo-3.0-generate-001", prompt="a cat on a skateboard")
    operation = client.operations.get(operation)
    out["video"] = operation.response.generated_videos[0].video.uri if operation.done else None
    return out


def openai_surface():
    import google.auth
    import google.auth.transport.requests
    import openai

    # Google's documented way: a Google access token as the API key.
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    client = openai.OpenAI(base_url=f"{base_url}/v1/projects/{project}/locations/{location}/endpoints/openapi",
                           api_key=credentials.token, max_retries=0)
    completion = client.chat.completions.create(model=f"google/{model}",
                                                messages=[{"role": "user", "content": "hello openai"}])
    chunks = list(client.chat.completions.create(model=f"google/{model}", stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "stream me please"}]))
    return {
        "text": completion.choices[0].message.content,
        "usage": completion.usage.total_tokens,
        "stream": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
        "stream_usage": chunks[-1].usage.total_tokens if chunks[-1].usage else None,
    }


def anthropic_surface():
    from anthropic import AnthropicVertex

    client = AnthropicVertex(region=location, project_id=project, base_url=f"{base_url}/v1", max_retries=0)
    message = client.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hello claude"}])
    with client.messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "stream some words"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    count = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "count these four"}])
    beta = client.beta.messages.create(model=model, max_tokens=64, betas=["context-1m-2025-08-07"],
                                       messages=[{"role": "user", "content": "with a beta"}])
    return {
        "text": message.content[0].text,
        "usage": [message.usage.input_tokens, message.usage.output_tokens],
        "stream": streamed,
        "stream_usage": [final.usage.input_tokens, final.usage.output_tokens],
        "count": count.input_tokens,
        "beta_text": beta.content[0].text,
    }


surfaces = {"genai": genai_surface, "openai": openai_surface, "anthropic": anthropic_surface}
try:
    print(json.dumps(surfaces[client_name]()))
except Exception as e:  # the test reads what the client saw
    print(json.dumps({"error": f"{type(e).__name__}: {e}", "status": getattr(e, "status_code", getattr(e, "code", None))}))
