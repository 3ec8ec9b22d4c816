// Google's Node client (google-auth-library) against the broker: GoogleAuth finds the metadata
// server through GCE_METADATA_HOST, as it would on GCE, and mints an access and an ID token.
// Prints one JSON object; the Rust test checks it against the emulator.
const { GoogleAuth } = require("google-auth-library");

async function main() {
  const audience = process.argv[2];
  const auth = new GoogleAuth({ scopes: "https://www.googleapis.com/auth/cloud-platform" });
  const client = await auth.getClient();
  const token = await auth.getAccessToken();
  const idClient = await auth.getIdTokenClient(audience);
  const idToken = await idClient.idTokenProvider.fetchIdToken(audience);
  const credentials = await auth.getCredentials();
  process.stdout.write(
    JSON.stringify({
      kind: client.constructor.name,
      project: await auth.getProjectId(),
      email: credentials.client_email,
      token,
      id_token: idToken,
    }),
  );
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
