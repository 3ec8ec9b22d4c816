// Google's Go client (golang.org/x/oauth2/google) against the broker: FindDefaultCredentials
// finds the metadata server through GCE_METADATA_HOST, as it would on GCE, and mints a token.
// Prints one JSON object; the Rust test checks it against the emulator.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"cloud.google.com/go/compute/metadata"
	"golang.org/x/oauth2/google"
)

func main() {
	ctx := context.Background()
	creds, err := google.FindDefaultCredentials(ctx, "https://www.googleapis.com/auth/cloud-platform")
	if err != nil {
		fail("FindDefaultCredentials", err)
	}
	token, err := creds.TokenSource.Token()
	if err != nil {
		fail("Token", err)
	}
	email, err := metadata.Email("default")
	if err != nil {
		fail("metadata.Email", err)
	}
	idToken, err := metadata.Get("instance/service-accounts/default/identity?audience=" + os.Args[1])
	if err != nil {
		fail("identity", err)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"project":    creds.ProjectID,
		"email":      email,
		"token":      token.AccessToken,
		"token_type": token.TokenType,
		"expiry":     token.Expiry,
		"id_token":   idToken,
	})
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}
