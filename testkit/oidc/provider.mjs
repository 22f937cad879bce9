// A real OpenID provider for the tests (oidc-provider from the npm registry), started by
// testkit::oidc on a loopback port: `node provider.mjs <port>`.
//
// Machine clients use the client-credentials grant; access tokens are JWTs for the
// resource asked (`resource=`, default api://tributary) with a `roles` claim per client.
// People sign in to the dashboard through the public client `dashboard` (authorization
// code + PKCE; any loopback port in its redirect URI) on the provider's own login and
// consent pages (oidc-provider's devInteractions: any password; the login is the
// account, whose roles come from `accounts`). Every
// start makes new signing keys (RS256 and ES256), so a restart is a key rotation.
// `GET /test/mint?kind=expired|foreign|none` mints tokens no honest provider issues:
// expired (signed with the published key), signed by an unpublished key under a
// published key id, and `alg: none`.
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.argv[2]);
// the test process that started us: when it is gone, so are we
const parent = Number(process.argv[3] || 0);
if (parent) {
  setInterval(() => {
    try { process.kill(parent, 0); } catch { process.exit(0); }
  }, 500).unref();
}
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'api://tributary';

async function key(alg) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `${alg}-${crypto.randomUUID()}`, alg, use: 'sig' };
}
const rsa = await key('RS256');
const ec = await key('ES256');
const foreign = await key('RS256');

// client id → roles claim (and signing algorithm)
const clients = {
  ops: { roles: ['operator'] },
  reader: { roles: 'viewer' },
  'admins-es': { roles: ['Tributary.Admin', 'other'], alg: 'ES256' },
  'no-role': { roles: [] },
  stranger: { roles: ['admin'] },
};

// account (the login typed on the provider's page) → roles claim
const accounts = {
  ann: ['operator'],
  vic: 'viewer',
  ada: ['admin'],
  nobody: [],
};
// the dashboard's access tokens live this long (TRIBUTARY_TEST_OIDC_TTL seconds)
const userTokenTtl = Number(process.env.TRIBUTARY_TEST_OIDC_TTL || 300);

const provider = new Provider(issuer, {
  clients: [
    ...Object.keys(clients).map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: 'api',
    })),
    {
      client_id: 'dashboard',
      application_type: 'native',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/api/v1/session/oidc/callback'],
      token_endpoint_auth_method: 'none',
      scope: 'openid profile api',
    },
    {
      client_id: 'dashboard-confidential',
      client_secret: 'dashboard-confidential-secret',
      application_type: 'native',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/api/v1/session/oidc/callback'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid profile api',
    },
  ],
  jwks: { keys: [rsa, ec] },
  scopes: ['openid', 'profile', 'api'],
  claims: { openid: ['sub'], profile: ['preferred_username'] },
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({ sub: id, preferred_username: `${id}@example.test` }),
  }),
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'api',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: client.clientId.startsWith('dashboard') ? userTokenTtl : 300,
        jwt: { sign: { alg: clients[client.clientId]?.alg ?? 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => ({
    roles: token.accountId ? accounts[token.accountId] : clients[token.clientId]?.roles,
  }),
});

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

provider.use(async (ctx, next) => {
  if (ctx.path !== '/test/mint') return next();
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, aud: RESOURCE, sub: 'ops', client_id: 'ops', roles: ['operator'],
    iat: now, exp: now + 300, jti: crypto.randomUUID(),
  };
  const kind = ctx.query.kind;
  let token;
  if (kind === 'expired') {
    claims.iat = now - 3600;
    claims.exp = now - 600;
    token = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: rsa.kid, typ: 'at+jwt' })
      .sign(await jose.importJWK(rsa, 'RS256'));
  } else if (kind === 'foreign') {
    token = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: rsa.kid, typ: 'at+jwt' })
      .sign(await jose.importJWK(foreign, 'RS256'));
  } else if (kind === 'none') {
    token = `${b64({ alg: 'none', kid: rsa.kid, typ: 'at+jwt' })}.${b64(claims)}.`;
  } else {
    ctx.status = 400;
    ctx.body = 'kind: expired, foreign or none';
    return;
  }
  ctx.body = { access_token: token };
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc provider listening on ${issuer}`);
});
