import assert from 'node:assert/strict';
import { launchMarkets, spotFallback, type SpotFallbackInput, type TypeShare } from '../../src/provisioner';
import { launchCandidates, type Ec2PoolConfig } from '../../src/provisioner/ec2-api';

const input = (preemptions: Record<string, number>, o: Partial<SpotFallbackInput> = {}): SpotFallbackInput => ({
  spot: true,
  onDemandAllowed: true,
  fallbackAfter: 3,
  windowMin: 60,
  preemptions: new Map(Object.entries(preemptions)),
  ...o,
});

describe('spotFallback (pure)', () => {
  const cases: Array<{ name: string; input: SpotFallbackInput; onDemand: string[]; reason: RegExp }> = [
    { name: 'no preemptions: spot as usual', input: input({ b2g: 0, linux64: 0 }), onDemand: [], reason: /no job type preempted 3\+ times in 60m/ },
    { name: 'below the threshold', input: input({ b2g: 2 }), onDemand: [], reason: /no job type preempted/ },
    { name: 'at the threshold: that type goes on-demand', input: input({ b2g: 3, linux64: 1 }), onDemand: ['b2g'], reason: /on-demand for b2g \(3 preemptions in 60m >= 3\)/ },
    { name: 'several types, sorted', input: input({ linux64: 5, b2g: 4 }), onDemand: ['b2g', 'linux64'], reason: /b2g \(4 .*linux64 \(5 / },
    { name: 'a pool that is not spot never falls back', input: input({ b2g: 9 }, { spot: false }), onDemand: [], reason: /not a spot pool/ },
    { name: 'a pool that forbids on-demand keeps spot', input: input({ b2g: 9 }, { onDemandAllowed: false }), onDemand: [], reason: /spotFallbackToOnDemand: false/ },
    { name: 'threshold 0 turns the fallback off', input: input({ b2g: 9 }, { fallbackAfter: 0 }), onDemand: [], reason: /fallback off/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = spotFallback(c.input);
      assert.deepEqual(v.onDemandTypes, c.onDemand);
      assert.match(v.reason, c.reason);
    });
  }
});

describe('launchMarkets (pure)', () => {
  const share = (type: string, backlog: number): TypeShare => ({ type, backlog, overThreshold: backlog > 0, reason: '' });
  const cases: Array<{ name: string; launch: number; epi: number; types: TypeShare[]; onDemandTypes: string[]; want: { usual: number; onDemand: number } }> = [
    { name: 'nothing fell back', launch: 3, epi: 1, types: [share('b2g', 3)], onDemandTypes: [], want: { usual: 3, onDemand: 0 } },
    { name: 'the only type fell back', launch: 3, epi: 1, types: [share('b2g', 3)], onDemandTypes: ['b2g'], want: { usual: 0, onDemand: 3 } },
    { name: 'mixed: only the fallen type goes on-demand', launch: 4, epi: 1, types: [share('b2g', 1), share('linux64', 3)], onDemandTypes: ['b2g'], want: { usual: 3, onDemand: 1 } },
    { name: 'rounded up to whole instances', launch: 2, epi: 4, types: [share('b2g', 5), share('linux64', 3)], onDemandTypes: ['b2g'], want: { usual: 0, onDemand: 2 } },
    { name: 'never more than the launch', launch: 1, epi: 1, types: [share('b2g', 6)], onDemandTypes: ['b2g'], want: { usual: 0, onDemand: 1 } },
    { name: 'nothing to launch', launch: 0, epi: 1, types: [share('b2g', 6)], onDemandTypes: ['b2g'], want: { usual: 0, onDemand: 0 } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(launchMarkets(c.launch, c.epi, c.types, c.onDemandTypes), c.want));
});

describe('launchCandidates with the preemption fallback', () => {
  const config = (o: Partial<Ec2PoolConfig> = {}): Ec2PoolConfig => ({
    region: 'eu-west-1',
    launchTemplate: { name: 'b', version: '$Latest' },
    subnetIds: ['subnet-a'],
    instanceTypes: [],
    spot: true,
    spotFallbackToOnDemand: true,
    tags: {},
    ...o,
  });
  it('a spot pool tries spot, then on-demand; asked for on-demand, only on-demand', () => {
    assert.deepEqual(launchCandidates(config(), 't').map((c) => c.market), ['spot', 'on-demand']);
    assert.deepEqual(launchCandidates(config(), 't', true).map((c) => c.market), ['on-demand']);
  });
});
