// Issue 10: a short, bounded fuzz run (bench/fuzz.ts) against the real gateway: mutated frames of
// every request type (taken from the protobuf reflection), each answered exactly once, never with
// INTERNAL, and the server alive at the end. `npm run fuzz -- --frames N` runs a longer one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pb } from '../gateway/wire.js';
import { REQUEST_TYPES, runFuzz } from '../bench/fuzz.js';

test('the fuzzer covers every request type the generated protocol code knows', () => {
  // The generated code's view of the Request oneof, independent of the fuzzer's reflection.
  const generated = (pb.Request as unknown as { prototype: object }).prototype;
  const oneof = Object.getOwnPropertyDescriptor(generated, 'body');
  assert.ok(oneof, 'Request has a body oneof');
  for (const type of REQUEST_TYPES) assert.ok(type in generated, `${type} is a request type`);
  assert.ok(REQUEST_TYPES.includes('join') && REQUEST_TYPES.includes('endMeeting') && REQUEST_TYPES.length >= 36);
});

test('1500 fuzzed frames: one response each, no INTERNAL, no error log, the server alive', async () => {
  const seed = Number(process.env.C4V_FUZZ_SEED ?? Date.now() % 1_000_000);
  const r = await runFuzz({ frames: 1500, seed, timeMs: 120_000 });
  const where = `(seed ${seed}; rerun with C4V_FUZZ_SEED=${seed})`;
  assert.equal(r.violations, [], `violations ${where}`);
  assert.is(r.internal, 0, `INTERNAL answers ${where}`);
  assert.is(r.errorLogs, 0, `error logs ${where}`);
  assert.ok(r.aliveAtEnd, `a client could join at the end ${where}`);
  assert.is(r.frames, 1500);
  assert.is(r.responses + Object.values(r.closes).reduce((a, b) => a + b, 0), r.frames, 'every frame got a response or a close');
  for (const type of REQUEST_TYPES) {
    assert.ok(r.perType[type]! > 0, `${type} was sent`);
    assert.ok(r.mutatedPerType[type]! > 0, `${type} was mutated`);
  }
  assert.ok(r.okResponses > 0, 'some frames were valid and accepted (the fuzzer reaches the handlers)');
});

test.run();
