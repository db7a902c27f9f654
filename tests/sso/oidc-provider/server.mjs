// A company's identity provider for the single sign-on tests: panva's oidc-provider (a certified
// OpenID Connect implementation) with a small sign-in and consent page of our own, so the browser
// signs in with a real password check, as at a company's provider.
//
// Usage: node server.mjs CONFIG.json, where CONFIG holds
//   {"port": 5000, "clients": [{client_id, client_secret, redirect_uris}],
//    "accounts": {"alice": {"password": "...", "name": "Alice Liddell", "email": "..."}}}
// Prints "ready <issuer>" on stdout once it listens.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const issuer = `http://127.0.0.1:${config.port}`;
const accounts = config.accounts;

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)} · Example Corp ID</title></head>
<body><main><h1>Example Corp ID</h1><h2>${escape(title)}</h2>${body}</main></body></html>`;

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    ...client,
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  })),
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
  },
  async findAccount(ctx, id) {
    const person = accounts[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: person.name,
          email: person.email,
          email_verified: true,
        };
      },
    };
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["test-only-cookie-key"] },
});

async function readForm(req) {
  let raw = "";
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

// The interaction pages: a sign-in form that checks the password, then a consent form.
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)(\/(login|consent))?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params, session } = details;
  if (ctx.method === "GET" && !match[2]) {
    ctx.type = "html";
    if (prompt.name === "login") {
      const failed = ctx.query.failed ? '<p role="alert">Wrong user name or password.</p>' : "";
      ctx.body = page(
        "Sign in",
        `${failed}<form method="post" action="/interaction/${uid}/login">
<label>User name <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>`,
      );
    } else {
      ctx.body = page(
        "Allow access",
        `<p>${escape(params.client_id)} asks for your ${escape(params.scope)}.</p>
<form method="post" action="/interaction/${uid}/consent"><button type="submit">Allow</button></form>`,
      );
    }
    return undefined;
  }
  if (ctx.method === "POST" && match[3] === "login") {
    const form = await readForm(ctx.req);
    const login = form.get("login") || "";
    const person = accounts[login];
    if (!person || person.password !== form.get("password")) {
      ctx.redirect(`/interaction/${uid}?failed=1`);
      return undefined;
    }
    return provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: login } },
      { mergeWithLastSubmission: false },
    );
  }
  if (ctx.method === "POST" && match[3] === "consent") {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(
      ctx.req,
      ctx.res,
      { consent: { grantId } },
      { mergeWithLastSubmission: true },
    );
  }
  return next();
});

provider.listen(config.port, "127.0.0.1", () => {
  process.stdout.write(`ready ${issuer}\n`);
});
