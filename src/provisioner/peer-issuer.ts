/** A launched instance's own VPN identity, as its launch needs it. */
export interface IssuedPeer {
  /** Its tunnel address. */
  address: string;
  publicKey: string;
  /** The instance's user-data (raw, not base64): it carries the private key, and nothing else does. */
  userData: string;
}

/**
 * Gives each instance a VPN pool launches its own peer (keys, address, user-data) and takes it
 * back when the instance is gone. Implemented outside the provisioner (the composition root
 * wires the VPN module's), so the provisioner only knows this shape.
 */
export interface PeerIssuer {
  /**
   * The peer for one single-instance launch, keyed by its ClientToken: the same token gets the
   * same peer while this process lives, so a retried launch sends identical parameters. The
   * peer is on the hub when this resolves. Rejects with `disposition: 'fatal'` when the pool's
   * address plan has no free address.
   */
  issue(token: string, signal: AbortSignal): Promise<IssuedPeer>;
  /** The launch with this token made `instanceId`: its peer stays until the instance is terminated. */
  bind(token: string, instanceId: string): Promise<void>;
  /** The launch failed for good: its peer leaves the hub and its address is free again. */
  abandon(token: string): Promise<void>;
  /** These instances are terminated: their peers leave the hub and their addresses are freed. */
  release(instanceIds: readonly string[]): Promise<void>;
  /**
   * The instances the pool still has (any state but terminated): peers of every other instance,
   * and launches that never bound after a grace period, are released.
   */
  sweep(liveInstanceIds: readonly string[]): Promise<void>;
}
