/**
 * Publish/subscribe on an Oracle channel, with a subscriber that
 * disconnects and resumes where it left off.
 *
 * A publisher appends numbered events to `/demo/news`. A subscriber reads
 * them, drops its connection mid-stream (closes its client), connects
 * again and subscribes from the position after the last event it saw: it
 * gets every event exactly once.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/pubsub.ts
 * ```
 *
 * @module
 */

import { OracleClient, startOracleGroup } from "../mod.ts";

const CHANNEL = "/demo/news";
const COUNT = 200;

const oracle = await startOracleGroup({ size: 3 });
try {
  const publisher = await OracleClient.connect({ replicas: oracle.replicas });
  const received: number[] = [];
  let next = 1; // the position to resume from

  /** Subscribes from `next` until `stopAfter` events arrived, then disconnects. */
  const session = async (stopAfter: number) => {
    const client = await OracleClient.connect({ replicas: oracle.replicas });
    const done = Promise.withResolvers<void>();
    client.subscribe(CHANNEL, { from: next }, (events) => {
      for (const event of events) {
        if (received.length >= stopAfter) break;
        received.push((event.data as { n: number }).n);
        next = event.seq + 1;
      }
      if (received.length >= stopAfter) done.resolve();
    });
    await done.promise;
    await client.close();
  };

  const publishing = (async () => {
    for (let n = 1; n <= COUNT; n++) {
      await publisher.append(CHANNEL, { n });
    }
  })();
  await session(COUNT / 2); // reads half, then drops its connection
  await session(COUNT); // resumes from where it left off
  await publishing;
  await publisher.close();

  const expected = Array.from({ length: COUNT }, (_, i) => i + 1);
  const duplicates = received.length - new Set(received).size;
  console.log(JSON.stringify({
    published: COUNT,
    received: received.length,
    duplicates,
    inOrder: received.every((n, i) => n === expected[i]),
    ok: received.length === COUNT && duplicates === 0 &&
      received.every((n, i) => n === expected[i]),
  }));
} finally {
  await oracle.stop();
}
