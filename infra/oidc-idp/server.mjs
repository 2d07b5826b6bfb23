// A real OpenID Connect provider (npm `oidc-provider`, OpenID Certified) for Stratus's sign-in
// tests and local experiments. Never for production: it uses the library's development
// interactions (any password is accepted for the configured logins).
//
// Configuration (environment):
//   OIDC_IDP_PORT            port on 127.0.0.1 (required)
//   OIDC_IDP_ISSUER          issuer URL (default http://127.0.0.1:<port>)
//   OIDC_IDP_CLIENT_ID       the static client's id (default "stratus")
//   OIDC_IDP_CLIENT_SECRET   its secret (default "stratus-secret")
//   OIDC_IDP_REDIRECT_URIS   comma-separated redirect URIs (required)
//   OIDC_IDP_USERS           JSON object login -> {"email": ..., "email_verified": bool,
//                            "groups": [...]} (groups optional: released with scope `groups`)
//   OIDC_IDP_ID_TOKEN_ALG    ID token signing algorithm: RS256 (default) or ES256
// Prints "oidc-idp listening on <issuer>" once ready.
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number.parseInt(process.env.OIDC_IDP_PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error('OIDC_IDP_PORT is required');
  process.exit(2);
}
const issuer = process.env.OIDC_IDP_ISSUER ?? `http://127.0.0.1:${port}`;
const redirectUris = (process.env.OIDC_IDP_REDIRECT_URIS ?? '').split(',').filter(Boolean);
if (redirectUris.length === 0) {
  console.error('OIDC_IDP_REDIRECT_URIS is required');
  process.exit(2);
}
const users = JSON.parse(
  process.env.OIDC_IDP_USERS ?? '{"alice": {"email": "alice@example.com", "email_verified": true}}',
);
const idTokenAlg = process.env.OIDC_IDP_ID_TOKEN_ALG ?? 'RS256';

// A fresh signing key per run: tests fetch it through discovery, like any relying party.
const signingKey =
  idTokenAlg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const jwk = { ...signingKey.export({ format: 'jwk' }), alg: idTokenAlg, use: 'sig', kid: 'test-1' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_IDP_CLIENT_ID ?? 'stratus',
      client_secret: process.env.OIDC_IDP_CLIENT_SECRET ?? 'stratus-secret',
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: idTokenAlg,
    },
  ],
  // PKCE (S256 only, the library's default method) for every client, confidential ones too.
  pkce: { required: () => true },
  jwks: { keys: [jwk] },
  // Scope `groups` releases the `groups` claim (a list of names), as Okta's and Keycloak's
  // group claims do; a login without groups has no such claim.
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  // Put the granted claims (email, email_verified) in the ID token itself, as most IdPs do;
  // Stratus reads them from there.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id, email: user.email, email_verified: Boolean(user.email_verified) };
        if (Array.isArray(user.groups)) claims.groups = user.groups;
        return claims;
      },
    };
  },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-idp listening on ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
