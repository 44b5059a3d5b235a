// The one assertion the tests make about a refusal: it is a GatewayError with this stable code (and,
// where several rules share a code, a detail that names the rule that refused).
import assert from 'node:assert/strict';
import { GatewayError, type ErrorCode } from '../../src/http/errors.js';

export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, detail?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof GatewayError, `expected a GatewayError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (detail !== undefined) assert.match(e.detail ?? '', detail);
    return true;
  });
}
