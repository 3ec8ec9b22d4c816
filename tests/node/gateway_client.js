// Node against the broker's gateway, unmodified. argv: mode, then
//   fetch BROKER_URL PATH     a plain global fetch() (undici) of the gateway and the metadata token
//   genai PROJECT LOCATION MODEL [BASE_URL]
//                             Google's GenAI SDK (@google/genai); with no BASE_URL it reads
//                             GOOGLE_VERTEX_BASE_URL and its credential from the metadata server,
//                             as function code would with the layer's wrapper
// Prints one JSON object.
const { GoogleGenAI } = require("@google/genai");

async function plainFetch(broker, path) {
  const answer = await fetch(`${broker}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hello from fetch" }] }] }),
  });
  const token = await fetch(`${broker}/computeMetadata/v1/instance/service-accounts/default/token`, {
    headers: { "Metadata-Flavor": "Google" },
  });
  return {
    status: answer.status,
    body: await answer.json(),
    token_status: token.status,
    token: await token.json(),
  };
}

async function genai(project, location, model, baseUrl) {
  const options = { vertexai: true, project, location };
  if (baseUrl) options.httpOptions = { baseUrl };
  const ai = new GoogleGenAI(options);
  const answer = await ai.models.generateContent({ model, contents: "hello from node" });
  return { text: answer.text, usage: answer.usageMetadata.totalTokenCount };
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  const out = mode === "fetch" ? await plainFetch(...args) : await genai(...args);
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
