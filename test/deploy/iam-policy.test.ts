import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');

/**
 * The IAM actions each SDK command needs. DeleteMessageBatch is authorized as sqs:DeleteMessage
 * (SQS has no batch action of its own); RunInstances with TagSpecifications also needs
 * ec2:CreateTags (tag on create). A command missing here fails the test: add it, and to the policy.
 */
const ACTIONS: Record<string, readonly string[]> = {
  DescribeInstancesCommand: ['ec2:DescribeInstances'],
  DescribeLaunchTemplatesCommand: ['ec2:DescribeLaunchTemplates'],
  DescribeSubnetsCommand: ['ec2:DescribeSubnets'],
  RunInstancesCommand: ['ec2:RunInstances', 'ec2:CreateTags'],
  StartInstancesCommand: ['ec2:StartInstances'],
  StopInstancesCommand: ['ec2:StopInstances'],
  TerminateInstancesCommand: ['ec2:TerminateInstances'],
  ReceiveMessageCommand: ['sqs:ReceiveMessage'],
  DeleteMessageBatchCommand: ['sqs:DeleteMessage'],
  PutObjectCommand: ['s3:PutObject'],
  GetObjectCommand: ['s3:GetObject'],
  // HEAD is authorized as GetObject; without ListBucket S3 answers a missing key 403, not 404.
  HeadObjectCommand: ['s3:GetObject', 's3:ListBucket'],
};

interface Statement {
  Sid: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string>>;
}

const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every `new XxxCommand(` in src/ whose XxxCommand is imported from an AWS SDK client, with the files that send it. */
function sdkCommandsSent(): Map<string, string[]> {
  const sent = new Map<string, string[]>();
  for (const file of sources(join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const fromSdk = new Set<string>();
    for (const m of text.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'@aws-sdk\/client-(?:ec2|sqs|s3)'/g)) {
      for (const name of m[1]!.split(',').map((n) => n.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()!)) fromSdk.add(name);
    }
    // An SDK loaded on first use (require in a helper, e.g. s3-objects.ts's sdk()): the commands taken out of it.
    if (/require\('@aws-sdk\/client-(?:ec2|sqs|s3)'\)/.test(text)) {
      for (const m of text.matchAll(/const\s*\{([^}]*)\}\s*=\s*\w+\(\)/g)) for (const name of m[1]!.split(',').map((n) => n.trim())) fromSdk.add(name);
    }
    for (const m of text.matchAll(/new\s+(\w+Command)\s*\(/g)) {
      if (fromSdk.has(m[1]!)) sent.set(m[1]!, [...(sent.get(m[1]!) ?? []), relative(ROOT, file)]);
    }
  }
  return sent;
}

describe('deploy/iam-policy.json: least privilege for the AWS calls spillway makes', () => {
  const policy = JSON.parse(readFileSync(join(ROOT, 'deploy', 'iam-policy.json'), 'utf8')) as { Version: string; Statement: Statement[] };
  const statements = policy.Statement;

  it('the scan finds the calls of ec2-api.ts and sqs-api.ts (it is not blind)', () => {
    const sent = sdkCommandsSent();
    assert.ok(sent.get('RunInstancesCommand')?.includes(join('src', 'provisioner', 'ec2-api.ts')));
    assert.ok(sent.get('ReceiveMessageCommand')?.includes(join('src', 'provisioner', 'sqs-api.ts')));
    assert.ok(sent.get('PutObjectCommand')?.includes(join('src', 'cas', 's3-objects.ts')));
  });

  it('grants exactly the actions the sent commands need: none missing, none unused', () => {
    const sent = sdkCommandsSent();
    const unknown = [...sent.keys()].filter((c) => !ACTIONS[c]);
    assert.deepEqual(unknown, [], `commands sent without a known IAM action (add them to ACTIONS and the policy): ${unknown.join(', ')}`);
    const needed = new Set([...sent.keys()].flatMap((c) => ACTIONS[c]!));
    const granted = new Set(statements.flatMap((s) => list(s.Action)));
    const missing = [...needed].filter((a) => !granted.has(a)).sort();
    const unused = [...granted].filter((a) => !needed.has(a)).sort();
    assert.deepEqual({ missing, unused }, { missing: [], unused: [] });
    assert.equal(policy.Version, '2012-10-17');
    for (const s of statements) {
      assert.equal(s.Effect, 'Allow', s.Sid);
      assert.ok(!list(s.Action).some((a) => a.includes('*')), `${s.Sid}: no wildcard actions`);
    }
  });

  it('instance changes are conditioned on the pool tag the code puts on instances', () => {
    const tag = /const POOL_TAG = '([^']+)'/.exec(readFileSync(join(ROOT, 'src', 'provisioner', 'ec2-api.ts'), 'utf8'))?.[1];
    assert.equal(tag, 'spillway:pool');
    const grants = (action: string) => statements.filter((s) => list(s.Action).includes(action));
    for (const action of ['ec2:StartInstances', 'ec2:StopInstances', 'ec2:TerminateInstances']) {
      for (const s of grants(action)) {
        assert.deepEqual(list(s.Resource), ['arn:aws:ec2:*:*:instance/*'], `${s.Sid}: instances only`);
        assert.equal(s.Condition?.Null?.[`aws:ResourceTag/${tag}`], 'false', `${s.Sid}: only instances with the ${tag} tag`);
      }
    }
    // RunInstances: instances and volumes must be created with the tag; the other resources it touches cannot carry one.
    const run = grants('ec2:RunInstances');
    const tagged = run.filter((s) => list(s.Resource).some((r) => /:(instance|volume)\//.test(r)));
    assert.ok(tagged.length > 0);
    for (const s of tagged) assert.equal(s.Condition?.Null?.[`aws:RequestTag/${tag}`], 'false', s.Sid);
    for (const s of run.filter((x) => !tagged.includes(x))) assert.ok(!list(s.Resource).includes('*'), `${s.Sid}: named resource types, not "*"`);
    for (const s of grants('ec2:CreateTags')) {
      assert.equal(s.Condition?.StringEquals?.['ec2:CreateAction'], 'RunInstances', `${s.Sid}: tags only at launch`);
      assert.equal(s.Condition?.Null?.[`aws:RequestTag/${tag}`], 'false', s.Sid);
    }
    // Describe* cannot be scoped by resource in EC2: "*" is the only resource they take.
    for (const action of ['ec2:DescribeInstances', 'ec2:DescribeLaunchTemplates', 'ec2:DescribeSubnets']) {
      for (const s of grants(action)) assert.equal(s.Resource, '*', s.Sid);
    }
  });
});
