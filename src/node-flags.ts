/**
 * The V8 heap sizing a gateway process is started with. V8 sizes its heap once, when the process
 * starts, so these are node command-line flags, not configuration: the Docker image's ENTRYPOINT
 * (kept equal to this list by test/compose.test.ts), `npm start`'s sandbox and the bench start
 * `ncpeh serve` with them; docs/operations.md ("Memory") says what they cost and how to change them.
 *
 * - `--max-semi-space-size=8`: the young generation is two 8 MB semi-spaces instead of V8's 16 MB
 *   each. Start-up's allocation grows it to its maximum before the gateway is ready, and it stays
 *   committed for the life of the process, busy or idle: 17 MB less resident memory, for about
 *   twice as many young-generation collections.
 * - `--max-old-space-size=1024`: between full collections V8 lets the old generation grow by a
 *   factor it bounds by the heap limit (Node 20, 64-bit: 1.3 up to a 256 MB limit, 4 from 2 GB on,
 *   in between by interpolation). On a machine with more than 16 GB the default limit is 4 GB, and
 *   30-35 MB of live data grew to 60-80 MB of old space, mostly garbage promoted under load, before
 *   it was collected. 1 GB (about 30 times what a gateway keeps alive; its work is bounded by the
 *   bulkheads) holds that growth to about half without the near-continuous marking that limits close
 *   to the live size cause (256 MB: +34% CPU), and caps a runaway heap well below the host's memory.
 *
 * Measured (bench/README.md, "Memory under load"): the peak resident size under load was 139-149 MB
 * per gateway in each of seven runs with both flags, and 158-197 MB in each of eleven runs with V8's
 * defaults. The price is CPU: 4-9% more per fetch for both gateways in three paired comparisons,
 * garbage collection going from 2% to 9-11% of the consumer's on-CPU samples and from 3% to 6% of
 * the provider's.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = Object.freeze(['--max-old-space-size=1024', '--max-semi-space-size=8']);
