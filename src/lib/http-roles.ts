import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { readAuthorization, tokenFingerprint, TokenGrants } from './http-credentials';

/**
 * The roles of the master's HTTP API, each including the ones before it: `read` (dashboard,
 * GET routes, /metrics, the event stream), `submit` (`POST /api/jobs`, cancel, retry) and `admin` (rules and
 * every other route that changes something).
 */
export type HttpRole = 'read' | 'submit' | 'admin';

/** What a route needs: a role, or nothing at all (`open`: the health check). */
export type RouteAccess = HttpRole | 'open';

export interface HttpRoleTokens {
  read: readonly string[];
  submit: readonly string[];
  admin: readonly string[];
}

export type AccessVerdict = { ok: true } | { ok: false; status: 401 | 403; message: string; challenge: string };

const RANK: Record<HttpRole, number> = { read: 0, submit: 1, admin: 2 };
const READ_CHALLENGE = 'Basic realm="spillway", charset="UTF-8"';
const WRITE_CHALLENGE = 'Bearer realm="spillway"';

/**
 * Decides requests by role. Reading is open while no read token is set; submitting while no
 * submit and no admin token is set (the config refuses that on a non-loopback host unless
 * `http.openSubmit`); admin routes are off without an admin token. A token that is presented
 * must be known, even where the route is open, so a mistyped token is noticed, not ignored.
 *
 * Basic credentials (any user, the token as password) count for reading only: a browser
 * sends them by itself once asked, to any request for this origin, including ones a hostile
 * page makes it send, so they must not be able to change anything. Changes need Bearer.
 */
export class HttpRoles {
  private readonly grants: TokenGrants<HttpRole>;
  private readonly open: Record<HttpRole, boolean>;
  private readonly adminConfigured: boolean;

  constructor(tokens: HttpRoleTokens) {
    this.grants = new TokenGrants<HttpRole>([
      ...tokens.admin.map((t) => [t, 'admin'] as const),
      ...tokens.submit.map((t) => [t, 'submit'] as const),
      ...tokens.read.map((t) => [t, 'read'] as const),
    ]);
    this.open = {
      read: tokens.read.length === 0,
      submit: tokens.submit.length === 0 && tokens.admin.length === 0,
      admin: false,
    };
    this.adminConfigured = tokens.admin.length > 0;
  }

  check(need: RouteAccess, header: string | readonly string[] | undefined): AccessVerdict {
    if (need === 'open') return { ok: true };
    const challenge = need === 'read' ? READ_CHALLENGE : WRITE_CHALLENGE;
    const refuse = (status: 401 | 403, message: string): AccessVerdict => ({ ok: false, status, message, challenge });
    if (need === 'admin' && !this.adminConfigured) return refuse(403, 'no admin token is configured: rule changes through the API are off');
    const given = readAuthorization(header);
    const what = need === 'admin' ? 'admin token' : need === 'submit' ? 'submit or admin token' : 'read token';
    if (given.kind === 'none') {
      if (this.open[need]) return { ok: true };
      if (need === 'admin') return refuse(401, 'admin token required (Authorization: Bearer ...)');
      if (need === 'submit') return refuse(401, 'job submission needs a submit or admin token (Authorization: Bearer ..., or --token / SPILLWAY_TOKEN)');
      return refuse(401, 'a read token is required (Authorization: Bearer ..., or Basic with the token as password)');
    }
    if (given.kind === 'malformed') return refuse(401, given.reason);
    let role: HttpRole | undefined;
    if (given.kind === 'bearer') role = this.grants.find(given.token);
    else {
      for (const p of given.pairs) role ??= this.grants.find(p.password);
      if (role !== undefined && need !== 'read') {
        return refuse(401, 'Basic credentials can only read (browsers send them by themselves); use Authorization: Bearer ...');
      }
    }
    if (role === undefined) {
      return refuse(401, need === 'admin' ? 'wrong admin token' : need === 'submit' ? `wrong token: job submission needs a ${what}` : 'wrong token');
    }
    if (RANK[role] < RANK[need]) {
      return refuse(403, need === 'admin' ? `a ${role} token cannot change settings: an admin token is required` : `a ${role} token cannot submit, cancel or retry jobs: use a ${what}`);
    }
    return { ok: true };
  }

  /**
   * Who made a request that `check` let through, for records such as who cancelled a job:
   * the role of its token and the token's fingerprint ("submit token 3f9a1c2e"), never the
   * token itself; "anonymous (open API)" where the route was open and no token was sent.
   */
  caller(header: string | readonly string[] | undefined): string {
    const given = readAuthorization(header);
    const candidates = given.kind === 'bearer' ? [given.token] : given.kind === 'basic' ? given.pairs.map((p) => p.password) : [];
    for (const token of candidates) {
      const role = this.grants.find(token);
      if (role !== undefined) return `${role} token ${tokenFingerprint(token)}`;
    }
    return 'anonymous (open API)';
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs. @defaultValue 'read' for GET and HEAD, 'admin' for anything else */
    access?: RouteAccess;
  }
}

/**
 * Puts the role check in front of every route registered after it in `app`'s context, as an
 * onRequest hook (before any body is read), so a new route cannot forget it: a route changes
 * nothing without `config.access`, or needs the admin token.
 */
export function guardRoutes(app: FastifyInstance, roles: HttpRoles, refused: (req: FastifyRequest, need: RouteAccess, message: string) => void): void {
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat();
    const need: RouteAccess = route.config?.access ?? (methods.every((m) => m === 'GET' || m === 'HEAD') ? 'read' : 'admin');
    const guard: onRequestHookHandler = async (req: FastifyRequest, reply: FastifyReply) => {
      const verdict = roles.check(need, req.headers.authorization);
      if (verdict.ok) return;
      refused(req, need, verdict.message);
      const code = verdict.status === 401 ? 'SPILLWAY_E_UNAUTHORIZED' : 'SPILLWAY_E_FORBIDDEN';
      if (verdict.status === 401) reply.header('www-authenticate', verdict.challenge);
      return reply.status(verdict.status).send({ error: { code, message: verdict.message } });
    };
    route.onRequest = [guard, ...[route.onRequest ?? []].flat()];
  });
}
