// Java's google-auth-library (Debian's libgoogle-auth-java), unmodified: ComputeEngineCredentials
// finds the broker through GCE_METADATA_HOST, as on Compute Engine it finds the metadata server.
// argv: an ID-token audience. Prints one JSON object: email, project, token, expiry, id_token,
// kind. The project is read as Google's Java Cloud libraries read it on Compute Engine: the
// metadata `project-id`, through the library's own HTTP client.

import com.google.api.client.http.GenericUrl;
import com.google.api.client.http.HttpRequest;
import com.google.api.client.http.javanet.NetHttpTransport;
import com.google.auth.oauth2.AccessToken;
import com.google.auth.oauth2.ComputeEngineCredentials;
import com.google.auth.oauth2.GoogleCredentials;
import com.google.auth.oauth2.IdToken;
import java.util.Collections;

public class BrokerToken {
  public static void main(String[] args) throws Exception {
    GoogleCredentials found = GoogleCredentials.getApplicationDefault();
    ComputeEngineCredentials credentials = (ComputeEngineCredentials) found;
    AccessToken token = credentials.refreshAccessToken();
    IdToken id = credentials.idTokenWithAudience(args[0], Collections.emptyList());
    HttpRequest request = new NetHttpTransport().createRequestFactory().buildGetRequest(
        new GenericUrl("http://" + System.getenv("GCE_METADATA_HOST") + "/computeMetadata/v1/project/project-id"));
    request.getHeaders().set("Metadata-Flavor", "Google");
    String project = request.execute().parseAsString().trim();
    System.out.println(
        "{\"email\":\"" + credentials.getAccount()
            + "\",\"project\":\"" + project
            + "\",\"token\":\"" + token.getTokenValue()
            + "\",\"expiry_ms\":" + token.getExpirationTime().getTime()
            + ",\"id_token\":\"" + id.getTokenValue()
            + "\",\"kind\":\"" + found.getClass().getSimpleName() + "\"}");
  }
}
