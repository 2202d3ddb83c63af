import { z } from 'zod';
import type { MachineState } from './provider';

/*
 * EC2's events as EventBridge delivers them to an SQS queue: the message body is the event
 * itself, `{ version, id, "detail-type", source: "aws.ec2", account, time, region, resources,
 * detail }`. The detail shapes:
 *   EC2 Spot Instance Interruption Warning  { "instance-id", "instance-action": terminate|stop|hibernate }
 *     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
 *   EC2 Instance Rebalance Recommendation   { "instance-id" }
 *     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/rebalance-recommendations.html
 *   EC2 Instance State-change Notification  { "instance-id", state: pending|running|stopping|stopped|shutting-down|terminated }
 *     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-instance-state-changes.html
 * Unknown envelope and detail fields are allowed: AWS adds fields over time.
 */

const instanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'not an EC2 instance id');

const envelope = z.object({
  id: z.string().min(1),
  source: z.literal('aws.ec2'),
  time: z.string().min(1),
  region: z.string().min(1),
});

const interruption = envelope.extend({
  'detail-type': z.literal('EC2 Spot Instance Interruption Warning'),
  detail: z.object({ 'instance-id': instanceId, 'instance-action': z.enum(['terminate', 'stop', 'hibernate']) }),
});

const rebalance = envelope.extend({
  'detail-type': z.literal('EC2 Instance Rebalance Recommendation'),
  detail: z.object({ 'instance-id': instanceId }),
});

const stateChange = envelope.extend({
  'detail-type': z.literal('EC2 Instance State-change Notification'),
  detail: z.object({
    'instance-id': instanceId,
    state: z.enum(['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated']),
  }),
});

const ec2EventSchema = z.discriminatedUnion('detail-type', [interruption, rebalance, stateChange]);

const EC2_DETAIL_TYPES: readonly string[] = [interruption, rebalance, stateChange].map((s) => s.shape['detail-type'].value);

/** An EC2 event spillway acts on, in our terms. */
export type Ec2Event = { eventId: string; instanceId: string; time: string } & (
  | { kind: 'spot-interruption'; action: 'terminate' | 'stop' | 'hibernate' }
  | { kind: 'rebalance' }
  | { kind: 'state-change'; state: MachineState }
);

/** A message body as an event, or why it is not one (`unknown`: valid JSON of another kind). */
export type Ec2EventParse = { ok: true; event: Ec2Event } | { ok: false; unknown: boolean; reason: string };

export function parseEc2Event(body: string): Ec2EventParse {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, unknown: false, reason: 'not JSON' };
  }
  const head = z.object({ source: z.string(), 'detail-type': z.string() }).safeParse(json);
  if (!head.success) return { ok: false, unknown: false, reason: 'not an EventBridge event (no source / detail-type)' };
  if (head.data.source !== 'aws.ec2' || !EC2_DETAIL_TYPES.includes(head.data['detail-type'])) {
    return { ok: false, unknown: true, reason: `unhandled event: ${head.data.source} "${head.data['detail-type'].slice(0, 80)}"` };
  }
  const r = ec2EventSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, unknown: false, reason: `invalid "${head.data['detail-type']}": ${i?.path.join('.') ?? ''}: ${i?.message ?? 'schema mismatch'}` };
  }
  const e = r.data;
  const base = { eventId: e.id, instanceId: e.detail['instance-id'], time: e.time };
  switch (e['detail-type']) {
    case 'EC2 Spot Instance Interruption Warning':
      return { ok: true, event: { ...base, kind: 'spot-interruption', action: e.detail['instance-action'] } };
    case 'EC2 Instance Rebalance Recommendation':
      return { ok: true, event: { ...base, kind: 'rebalance' } };
    case 'EC2 Instance State-change Notification':
      return { ok: true, event: { ...base, kind: 'state-change', state: e.detail.state } };
  }
}
