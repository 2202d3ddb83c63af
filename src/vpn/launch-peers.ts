import type { Redis } from 'ioredis';
import { SpillwayError, type Logger } from '../lib';
import { poolAddresses } from './address-plan';
import { renderHubCommand, type HubCommandRunner } from './hub-command';
import { PeerLeases, type Lease, type LeaseEntry } from './peer-leases';
import { renderUserData } from './user-data';
import { peerConfig } from './wireguard-config';
import { generateKeyPair, type RandomBytes } from './wireguard-key';

/** A growing VPN pool's settings (its config's `pools.<name>.vpn`, as this module needs them). */
export interface LaunchPeersVpn {
  network: string;
  peerNetwork?: string | undefined;
  hubEndpoint: string;
  hubPublicKey: string;
  agentPort: number;
  hubAddPeer: readonly string[];
  hubRemovePeer: readonly string[];
  hubCommandTimeoutMs: number;
}

/** Every address of the pool's plan is leased: no launch until an instance is terminated. */
export class AddressPlanExhaustedError extends SpillwayError {
  readonly code = 'SPILLWAY_E_VPN_EXHAUSTED';
  readonly disposition = 'fatal';
}

/** The hub command failed: the peer is not on the hub, so nothing was launched. */
export class HubCommandError extends SpillwayError {
  readonly code = 'SPILLWAY_E_VPN_HUB';
  readonly disposition = 'retry';
}

export interface LaunchPeersDeps {
  pool: string;
  vpn: LaunchPeersVpn;
  /** The cloud-init template (vpn/cloud-init.yaml or the operator's). */
  userDataTemplate: string;
  /** The token the pool's agents present. */
  agentToken: string;
  jobTypes: readonly string[];
  executors: number;
  /** A connection without ioredis' keyPrefix; leases live under `keyPrefix`. */
  redis: Redis;
  keyPrefix: string;
  run: HubCommandRunner;
  clock: { now(): number };
  log: Logger;
  random?: RandomBytes;
  /**
   * A lease no launch bound to an instance is freed after this long (its master died
   * mid-launch); longer than any launch with its retries takes. @defaultValue 1800000 (30 min)
   */
  staleMs?: number;
}

/** EC2's listing can lag a launch; a bound lease whose instance is not listed yet is kept this long. */
const LISTING_LAG_MS = 2 * 60 * 1000;

/** How often the leased peers are put back on the hub (see {@link LaunchPeers.sweep}). */
const HUB_RESTORE_MS = 10 * 60 * 1000;

interface Pending {
  address: string;
  raw: string;
  peer: { address: string; publicKey: string; userData: string };
}

/**
 * The provisioner's PeerIssuer for one growing VPN pool: a fresh WireGuard key pair and the
 * first free address of the pool's plan per launch (leased in Redis, shared by every master),
 * the peer added to the hub with the operator's command before the launch and removed after
 * the instance is terminated. The private key exists only in this process until the launch
 * is bound, and in the user-data it renders: never in Redis or the log.
 */
export class LaunchPeers {
  private readonly leases: PeerLeases;
  private readonly plan: { hub: string; peers: string[] };
  private readonly pending = new Map<string, Pending>();
  private readonly log: Logger;
  private restoredAt: number | undefined;

  constructor(private readonly d: LaunchPeersDeps) {
    this.leases = new PeerLeases(d.redis, `${d.keyPrefix}:vpn:${d.pool}:leases`);
    this.plan = poolAddresses(d.vpn.network, d.vpn.peerNetwork);
    this.log = d.log.child({ component: 'vpn-peers', pool: d.pool });
  }

  /** How many addresses the plan has. */
  get capacity(): number {
    return this.plan.peers.length;
  }

  async issue(token: string): Promise<{ address: string; publicKey: string; userData: string }> {
    const known = this.pending.get(token);
    if (known) return known.peer;
    const keys = generateKeyPair(this.d.random);
    const lease: Lease = { token, publicKey: keys.publicKey, instanceId: null, at: this.d.clock.now() };
    const taken = await this.leases.take(this.plan.peers, lease);
    if (!taken) {
      const range = this.d.vpn.peerNetwork ?? this.d.vpn.network;
      throw new AddressPlanExhaustedError(
        `address plan ${range} exhausted: all ${this.plan.peers.length} peer addresses are leased (instances of the pool, or launches in flight); terminate instances or widen vpn.peerNetwork`,
      );
    }
    const { address, raw } = taken;
    const added = await this.hub('add', this.d.vpn.hubAddPeer, { publicKey: keys.publicKey, address, instanceId: '' });
    if (!added.ok) {
      await this.leases.swap(address, raw, undefined);
      throw new HubCommandError(`adding the peer ${address} to the hub failed: ${added.reason}`);
    }
    const name = `${this.d.pool}-${address}`;
    const wireguardConfig = peerConfig({
      name,
      address,
      keys,
      hubPublicKey: this.d.vpn.hubPublicKey,
      hubEndpoint: this.d.vpn.hubEndpoint,
      network: this.d.vpn.network,
    });
    const hub = this.plan.hub.includes(':') ? `[${this.plan.hub}]` : this.plan.hub;
    const userData = renderUserData(this.d.userDataTemplate, {
      peerName: name,
      wireguardConfig,
      masterUrl: `ws://${hub}:${this.d.vpn.agentPort}`,
      agentToken: this.d.agentToken,
      jobTypes: this.d.jobTypes.join(','),
      executors: String(this.d.executors),
    });
    const peer = { address, publicKey: keys.publicKey, userData };
    this.pending.set(token, { address, raw, peer });
    return peer;
  }

  async bind(token: string, instanceId: string): Promise<void> {
    const entry = await this.entryOf(token);
    this.pending.delete(token);
    if (!entry) {
      this.log.warn('vpn.peer-swept', { token, instanceId, reason: 'its lease was freed while the launch ran; the instance will not reach the hub' });
      return;
    }
    const bound = await this.leases.swap(entry.address, entry.raw, { ...entry.lease, instanceId, at: this.d.clock.now() });
    if (!bound) this.log.warn('vpn.peer-swept', { token, instanceId, address: entry.address, reason: 'its lease changed while the launch ran' });
  }

  async abandon(token: string): Promise<void> {
    const entry = await this.entryOf(token);
    this.pending.delete(token);
    if (entry) await this.remove(entry, 'its launch failed');
  }

  async release(instanceIds: readonly string[]): Promise<void> {
    const gone = new Set(instanceIds);
    for (const e of await this.leases.all()) {
      if (e.lease.instanceId !== null && gone.has(e.lease.instanceId)) await this.remove(e, 'instance terminated');
    }
  }

  /**
   * Frees the leases of instances gone from EC2 and of launches that never made one; then, at
   * the first listing after start and every 10 minutes, puts every remaining bound peer back on
   * the hub: peers added at run time (`wg set`) are not in the hub's config file, so a hub that
   * restarted (a reboot, `systemctl restart wg-quick@...`) has lost them and its instances
   * cannot reach the master. Adding a peer that is already there changes nothing.
   */
  async sweep(liveInstanceIds: readonly string[]): Promise<void> {
    const live = new Set(liveInstanceIds);
    const now = this.d.clock.now();
    const staleMs = this.d.staleMs ?? 30 * 60 * 1000;
    const kept: LeaseEntry[] = [];
    for (const e of await this.leases.all()) {
      const { instanceId, token, at } = e.lease;
      if (instanceId !== null && !live.has(instanceId) && now - at > LISTING_LAG_MS) await this.remove(e, 'instance gone from EC2');
      else if (instanceId === null && !this.pending.has(token) && now - at > staleMs) await this.remove(e, 'a launch that never made its instance');
      else if (instanceId !== null) kept.push(e);
    }
    if (this.restoredAt !== undefined && now - this.restoredAt < HUB_RESTORE_MS) return;
    this.restoredAt = now;
    let failed = 0;
    for (const e of kept) {
      const res = await this.hub('restore', this.d.vpn.hubAddPeer, { publicKey: e.lease.publicKey, address: e.address, instanceId: e.lease.instanceId ?? '' });
      if (!res.ok) failed++;
    }
    if (kept.length > 0) this.log.info('vpn.peers-restored', { peers: kept.length, failed });
  }

  /** Takes the peer off the hub, then frees its address; a failed hub command keeps the lease for the next sweep. */
  private async remove(e: LeaseEntry, why: string): Promise<void> {
    const res = await this.hub('remove', this.d.vpn.hubRemovePeer, { publicKey: e.lease.publicKey, address: e.address, instanceId: e.lease.instanceId ?? '' });
    if (!res.ok) return;
    if (await this.leases.swap(e.address, e.raw, undefined)) {
      this.log.info('vpn.peer-removed', { address: e.address, publicKey: e.lease.publicKey, instanceId: e.lease.instanceId, reason: why });
    }
  }

  private async entryOf(token: string): Promise<LeaseEntry | undefined> {
    const p = this.pending.get(token);
    const all = await this.leases.all();
    return all.find((e) => (p ? e.address === p.address && e.raw === p.raw : e.lease.token === token));
  }

  private async hub(what: 'add' | 'restore' | 'remove', template: readonly string[], v: { publicKey: string; address: string; instanceId: string }): Promise<{ ok: true } | { ok: false; reason: string }> {
    const argv = renderHubCommand(template, { ...v, pool: this.d.pool, allowedIps: `${v.address}/${v.address.includes(':') ? 128 : 32}` });
    let reason: string;
    try {
      const r = await this.d.run(argv, { timeoutMs: this.d.vpn.hubCommandTimeoutMs });
      if (r.exitCode === 0) {
        if (what === 'add') this.log.info('vpn.peer-added', { address: v.address, publicKey: v.publicKey });
        return { ok: true };
      }
      reason = `${argv[0]} exited ${r.exitCode ?? '(killed)'}: ${r.stderr.trim()}`;
    } catch (err) {
      reason = `${argv[0]} could not run: ${(err as Error).message}`;
    }
    this.log.error('vpn.hub-command-failed', { command: what, argv, address: v.address, reason });
    return { ok: false, reason };
  }
}
