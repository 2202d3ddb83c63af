import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../lib';

/**
 * Who builds run as, decided once at agent start. A build must not learn the agent's tokens
 * or state: as another user it cannot read the agent's environment or its 0600 files; as the
 * same user it can, unless a pid namespace hides the agent's /proc entries.
 * - `user`: the agent is root and builds run as an unprivileged user (default `nobody`).
 * - `namespace`: the agent is not root; builds run as its user in their own user, pid and
 *   mount namespaces, so /proc shows only the build's own processes.
 * - `agent`: builds run as the agent's user with nothing in between (root only when the
 *   operator asked for `--build-user root`); they can read what the agent can.
 */
export type BuildIdentity =
  | { kind: 'user'; user: string; uid: number; gid: number; setpriv: string | undefined }
  | { kind: 'namespace'; unshare: string; mapping: '--map-current-user' | '--map-root-user' }
  | { kind: 'agent' };

export interface DetectBuildIdentityOptions {
  /** User (name, uid, or `UID:GID`) builds run as when the agent is root; `root` runs them as root. @defaultValue 'nobody' */
  buildUser?: string;
  /** The agent's uid. @defaultValue process.getuid() */
  uid?: number;
  /** @defaultValue '/etc/passwd' */
  passwdFile?: string;
  /** Directories searched for `setpriv` and `unshare` (util-linux). @defaultValue ['/usr/bin', '/bin', '/usr/sbin', '/sbin'] */
  binDirs?: string[];
  log: Logger;
}

export const DEFAULT_BUILD_USER = 'nobody';

/**
 * Decides who builds run as and logs it once (`executor.isolation`, `aspect: 'identity'`), at
 * warn level whenever builds could read the agent's secrets.
 * @throws Error when the build user does not exist (a usage error, not a silent fallback to root)
 */
export async function detectBuildIdentity(o: DetectBuildIdentityOptions): Promise<BuildIdentity> {
  const uid = o.uid ?? process.getuid?.() ?? -1;
  const dirs = o.binDirs ?? ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  const log = (level: 'info' | 'warn', fields: Record<string, unknown>) => o.log[level]('executor.isolation', { aspect: 'identity', ...fields });
  if (uid === 0) {
    const wanted = o.buildUser ?? DEFAULT_BUILD_USER;
    if (wanted === 'root' || wanted === '0') {
      log('warn', { buildsRunAs: 'root', separation: 'none', note: 'builds run as root because --build-user root was given: they can read the agent token and everything else' });
      return { kind: 'agent' };
    }
    const numeric = /^(\d+):(\d+)$/.exec(wanted);
    // UID:GID needs no passwd entry: per-executor users can be plain numbers.
    const entry = numeric ? { name: wanted, uid: Number(numeric[1]), gid: Number(numeric[2]) } : await lookupUser(wanted, o.passwdFile ?? '/etc/passwd');
    if (!entry) throw new Error(`build user ${JSON.stringify(wanted)} does not exist (--build-user takes a user name or a uid of this machine)`);
    if (entry.uid === 0) throw new Error(`build user ${JSON.stringify(wanted)} has uid 0; say --build-user root to run builds as root`);
    const setpriv = await findProgram('setpriv', dirs);
    log('info', { buildsRunAs: `${entry.name} (uid ${entry.uid}, gid ${entry.gid})`, separation: 'user', setpriv: setpriv ?? null });
    return { kind: 'user', user: entry.name, uid: entry.uid, gid: entry.gid, setpriv };
  }
  const note = 'the agent is not root and cannot run builds as another user';
  if (o.buildUser !== undefined) log('warn', { ignored: { buildUser: o.buildUser }, note: `--build-user needs an agent started as root; ${note}` });
  const unshare = await findProgram('unshare', dirs);
  for (const mapping of ['--map-current-user', '--map-root-user'] as const) {
    if (unshare && namespaceWorks(unshare, mapping)) {
      log('warn', { buildsRunAs: `the agent's user (uid ${uid})`, separation: 'namespace', mapping, note: `${note}; builds get their own pid and mount namespace, so the agent's processes are hidden, but files readable by the agent (a --token-file among them) are readable by builds` });
      return { kind: 'namespace', unshare, mapping };
    }
  }
  log('warn', { buildsRunAs: `the agent's user (uid ${uid})`, separation: 'none', note: `${note}, and unprivileged user namespaces are not available: builds can read the agent's environment, command line and files` });
  return { kind: 'agent' };
}

/** A command to run `argv` as `identity`, and the uid/gid to spawn it with. */
export interface IdentityLaunch {
  argv: string[];
  uid?: number;
  gid?: number;
}

/**
 * How to start `argv` as `identity`. With `privilegedFirst` the command's first process must
 * keep the agent's privileges (the sandbox wrapper joins cgroups as root), so the switch to the
 * build user happens in front of `argv` (setpriv) instead of at spawn.
 */
export function launchAs(identity: BuildIdentity | undefined, argv: string[], privilegedFirst = false): IdentityLaunch {
  if (!identity || identity.kind === 'agent') return { argv };
  if (identity.kind === 'namespace') {
    // The build must not be the namespace's pid 1: the kernel shields pid 1 from signals it has
    // no handler for, so a timeout's SIGTERM would be lost. A shell waits for it instead.
    const init = ['/bin/sh', '-c', '"$@"; exit $?', 'spillway-build'];
    return { argv: [identity.unshare, '--user', identity.mapping, '--pid', '--fork', '--mount-proc', '--kill-child', '--', ...init, ...argv] };
  }
  if (privilegedFirst && identity.setpriv) {
    return { argv: [identity.setpriv, `--reuid=${identity.uid}`, `--regid=${identity.gid}`, '--clear-groups', '--', ...argv] };
  }
  // libuv drops the supplementary groups when it switches uid/gid.
  return { argv, uid: identity.uid, gid: identity.gid };
}

/** The variables a build started as another user needs to find a home of its own. */
export function identityEnv(identity: BuildIdentity | undefined, home: string): Record<string, string> {
  if (identity?.kind !== 'user') return {};
  return { HOME: home, USER: identity.user, LOGNAME: identity.user };
}

/** The owner to give a build's directories, when builds run as another user. */
export function buildOwner(identity: BuildIdentity | undefined): { uid: number; gid: number } | undefined {
  return identity?.kind === 'user' ? { uid: identity.uid, gid: identity.gid } : undefined;
}

/**
 * Gives the build user its tree: every directory and symlink, and every file not hardlinked
 * from the agent's cache. Cached inputs stay the agent's and read-only to the build (as in
 * Bazel's sandboxes): a build rewriting one in place would otherwise change the cache's inode.
 */
export async function handOver(root: string, owner: { uid: number; gid: number }): Promise<void> {
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isSymbolicLink()) return fs.lchown(p, owner.uid, owner.gid);
    if (st.isDirectory()) {
      await fs.chown(p, owner.uid, owner.gid);
      for (const name of await fs.readdir(p)) await walk(join(p, name));
      return;
    }
    if (st.nlink === 1) await fs.chown(p, owner.uid, owner.gid);
  };
  await walk(root);
}

/**
 * Why the build user cannot reach `dir`, or undefined when it can: each ancestor must let it
 * search (x), which a 0700 temp dir does not.
 */
export async function unreachableBy(dir: string, owner: { uid: number; gid: number }): Promise<string | undefined> {
  for (let p = dirname(dir); ; p = dirname(p)) {
    const st = await fs.stat(p);
    const bit = st.uid === owner.uid ? 0o100 : st.gid === owner.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return `${p} (mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid}) does not let the build user pass: chmod o+x it or choose another --work-dir`;
    if (p === dirname(p)) return undefined;
  }
}

function namespaceWorks(unshare: string, mapping: string): boolean {
  const r = spawnSync(unshare, ['--user', mapping, '--pid', '--fork', '--mount-proc', '--', '/bin/sh', '-c', 'exit 0'], { stdio: 'ignore', timeout: 5000 });
  return r.status === 0;
}

async function lookupUser(wanted: string, passwdFile: string): Promise<{ name: string; uid: number; gid: number } | undefined> {
  const text = await fs.readFile(passwdFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || uid === undefined || gid === undefined) continue;
    if (name === wanted || uid === wanted) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

async function findProgram(name: string, dirs: string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    try {
      await fs.access(join(dir, name), 1 /* X_OK */);
      return join(dir, name);
    } catch {
      // keep looking
    }
  }
  return undefined;
}
