// A real OpenID Connect / OAuth 2.0 authorization server for the tests, built on the certified
// `oidc-provider` package. Started by scripts/oauthenv.sh; everything it needs comes from the
// environment, and it only listens on loopback. Its devInteractions pages let a browser or an
// HTTP client sign in as any user name (the password is not checked).
//
//   OAUTH_PORT              listen port on 127.0.0.1 (required)
//   OAUTH_CLIENT_ID         confidential client (default emailengine-test)
//   OAUTH_CLIENT_SECRET     its secret (default emailengine-test-secret)
//   OAUTH_REDIRECT_URIS     comma-separated redirect URIs (default http://127.0.0.1/oauth; the
//                           client is a "native" one, so a loopback URI matches on any port)
//   OAUTH_POST_CLIENT_ID    a second confidential client that sends its secret in the request
//                           body (client_secret_post), as Google's and Microsoft's clients do
//                           (default emailengine-post)
//   OAUTH_POST_CLIENT_SECRET its secret (default emailengine-post-secret)
//   OAUTH_INTROSPECT_ID     resource-server client that may only introspect (default dovecot)
//   OAUTH_INTROSPECT_SECRET its secret (default dovecot-secret)
//   OAUTH_ACCESS_TTL        access-token lifetime in seconds (default 3600)
//   OAUTH_SHORT_TTL         lifetime of access tokens whose scope includes "short-lived"
//                           (default 3), so a test can watch a token expire
//   OAUTH_REFRESH_TTL       refresh-token lifetime in seconds (default 14 days)
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const port = Number(env.OAUTH_PORT);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('OAUTH_PORT must be a port number');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const accessTtl = Number(env.OAUTH_ACCESS_TTL || 3600);
const shortTtl = Number(env.OAUTH_SHORT_TTL || 3);
const refreshTtl = Number(env.OAUTH_REFRESH_TTL || 14 * 24 * 3600);
const redirectUris = (env.OAUTH_REDIRECT_URIS || 'http://127.0.0.1/oauth')
  .split(',')
  .map((u) => u.trim())
  .filter(Boolean);

// Mail scopes are ours (plus Gmail's, for a built-in provider pointed here); the token itself
// is what Dovecot checks, by introspection.
const scopes = ['openid', 'offline_access', 'email', 'profile', 'mail', 'short-lived',
  'https://mail.google.com/'];

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env.OAUTH_CLIENT_ID || 'emailengine-test',
      client_secret: env.OAUTH_CLIENT_SECRET || 'emailengine-test-secret',
      application_type: 'native',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: scopes.join(' '),
    },
    {
      client_id: env.OAUTH_POST_CLIENT_ID || 'emailengine-post',
      client_secret: env.OAUTH_POST_CLIENT_SECRET || 'emailengine-post-secret',
      application_type: 'native',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      scope: scopes.join(' '),
    },
    {
      client_id: env.OAUTH_INTROSPECT_ID || 'dovecot',
      client_secret: env.OAUTH_INTROSPECT_SECRET || 'dovecot-secret',
      redirect_uris: [],
      grant_types: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Any login name is an account; the e-mail claim is the name itself when it looks like one.
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        const email = id.includes('@') ? id : `${id}@example.com`;
        return { sub: id, email, email_verified: true, name: id };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
  },
  pkce: { required: () => false },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: tokenTtl,
    ClientCredentials: tokenTtl,
    RefreshToken: refreshTtl,
    AuthorizationCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    Session: 3600,
    Grant: refreshTtl,
  },
});

function tokenTtl(_ctx, token) {
  return String(token.scope || '').split(' ').includes('short-lived') ? shortTtl : accessTtl;
}

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
