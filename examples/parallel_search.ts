/**
 * Parallel search: a query fans out to every member of a group, each
 * searches its share of the data (by its place in the view), and the
 * asker merges the replies.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/parallel_search.ts
 * ```
 *
 * @module
 */

import { z } from "zod";
import { Actor, handler, type MessageContext, Node } from "../mod.ts";

const Search = z.object({ word: z.string().min(1) });

/** The same corpus everywhere; each member searches the lines it owns. */
const CORPUS = Array.from(
  { length: 1000 },
  (_, i) => `line ${i}: ${i % 7 === 0 ? "needle" : "hay"} ${i % 3 ? "x" : "y"}`,
);

class Searcher extends Actor {
  searched = 0;

  /** The lines of my share (every n-th, from my place in the view) holding `word`. */
  @handler(Search)
  search(m: z.infer<typeof Search>, context: MessageContext): number[] {
    const { members, me } = context.view;
    const mine = members.indexOf(me);
    const hits: number[] = [];
    for (let i = mine; i < CORPUS.length; i += members.length) {
      this.searched++;
      if (CORPUS[i].includes(m.word)) hits.push(i);
    }
    return hits;
  }
}

const node = await Node.start();
try {
  const members = [];
  for (let i = 0; i < 4; i++) {
    members.push(
      await node.join("/demo/search", new Searcher(), { label: `s${i}` }),
    );
  }
  for (let i = 0; i < 500 && members[0].view?.members.length !== 4; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const replies = await members[0].query(Search, { word: "needle" }, {
    reply: z.array(z.number().int()),
  });
  const found = replies.flatMap((r) => r.ok ? r.value : []).sort((a, b) =>
    a - b
  );
  const expected = CORPUS.flatMap((line, i) =>
    line.includes("needle") ? [i] : []
  );
  const shares = members.map((m) => m.actor.searched);
  console.log(JSON.stringify({
    members: replies.length,
    found: found.length,
    shares,
    ok: replies.length === 4 &&
      JSON.stringify(found) === JSON.stringify(expected) &&
      shares.reduce((a, b) => a + b, 0) === CORPUS.length,
  }));
} finally {
  await node.close();
}
