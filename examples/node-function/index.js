// A Node.js Lambda function that calls Vertex AI with Google's GenAI SDK and holds no
// credential: nothing here names vertex-broker, a key or a token.
//
// With the vertex-broker layer, AWS_LAMBDA_EXEC_WRAPPER=/opt/vertex-broker-wrapper and
// VERTEX_BROKER_TOKEN_ENDPOINTS=gateway (the SAM template's default), the wrapper points the SDK
// at the broker's gateway (GOOGLE_VERTEX_BASE_URL) and its credential lookup at the broker's
// metadata server; the gateway calls Vertex with the account's token. Without the layer the same
// code calls Vertex directly.
//
// Environment: GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_LOCATION (default global), MODEL (default
// gemini-2.5-flash). Event: API Gateway's, with {"prompt": "..."} as the body.
const { GoogleGenAI } = require("@google/genai");

const ai = new GoogleGenAI({
  vertexai: true,
  project: process.env.GOOGLE_CLOUD_PROJECT,
  location: process.env.GOOGLE_CLOUD_LOCATION || "global",
});
const model = process.env.MODEL || "gemini-2.5-flash";

exports.handler = async (event) => {
  const prompt = JSON.parse(event.body || "{}").prompt || "hello";
  const answer = await ai.models.generateContent({ model, contents: prompt });
  // Node's built-in fetch works against the gateway too, with no token at all.
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ genai: answer.text, usage: answer.usageMetadata.totalTokenCount }),
  };
};
