/**
 * Freezes a JSON-like value and everything reachable from it. For values shared across requests
 * (configuration, the trust list, remembered verification results): a request that tried to change
 * one would throw instead of changing it for every later request.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
