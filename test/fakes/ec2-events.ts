/**
 * EC2 events exactly as EventBridge puts them in an SQS message body (the shapes of the AWS
 * documentation's examples: spot-instance-termination-notices, rebalance-recommendations,
 * monitoring-instance-state-changes).
 */
export function interruptionWarning(instanceId: string, action: 'terminate' | 'stop' | 'hibernate' = 'terminate'): string {
  return JSON.stringify({
    version: '0',
    id: '12345678-1234-1234-1234-123456789012',
    'detail-type': 'EC2 Spot Instance Interruption Warning',
    source: 'aws.ec2',
    account: '123456789012',
    time: '2026-03-01T10:00:00Z',
    region: 'eu-west-1',
    resources: [`arn:aws:ec2:eu-west-1:123456789012:instance/${instanceId}`],
    detail: { 'instance-id': instanceId, 'instance-action': action },
  });
}

export function rebalanceRecommendation(instanceId: string): string {
  return JSON.stringify({
    version: '0',
    id: '12345678-1234-1234-1234-123456789013',
    'detail-type': 'EC2 Instance Rebalance Recommendation',
    source: 'aws.ec2',
    account: '123456789012',
    time: '2026-03-01T09:58:00Z',
    region: 'eu-west-1',
    resources: [`arn:aws:ec2:eu-west-1:123456789012:instance/${instanceId}`],
    detail: { 'instance-id': instanceId },
  });
}

export function stateChange(instanceId: string, state: 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated'): string {
  return JSON.stringify({
    id: '7bf73129-1428-4cd3-a780-95db273d1602',
    'detail-type': 'EC2 Instance State-change Notification',
    source: 'aws.ec2',
    account: '123456789012',
    time: '2026-03-01T10:02:00Z',
    region: 'eu-west-1',
    resources: [`arn:aws:ec2:eu-west-1:123456789012:instance/${instanceId}`],
    detail: { 'instance-id': instanceId, state },
  });
}

/** Another service's event that a broad EventBridge rule might also route to the queue. */
export function otherEvent(): string {
  return JSON.stringify({
    version: '0',
    id: '01234567-0123-0123-0123-012345678901',
    'detail-type': 'EBS Snapshot Notification',
    source: 'aws.ec2',
    account: '123456789012',
    time: '2026-03-01T01:30:00Z',
    region: 'eu-west-1',
    resources: ['arn:aws:ec2::eu-west-1:snapshot/snap-01234567'],
    detail: { event: 'createSnapshot', result: 'succeeded' },
  });
}
