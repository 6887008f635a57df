import assert from "node:assert/strict";

const checkout = new URL("../../", import.meta.url).pathname;

const MAIN = `import { z } from "zod";
import { Actor, handler, Node } from "@cohort/cohort";

const Add = z.object({ n: z.number().int() });

class Counter extends Actor<number> {
  total = 0;
  @handler(Add, { order: "abcast" })
  add(m: z.infer<typeof Add>): number {
    this.total += m.n;
    return this.total;
  }
  override checkpoint(): number {
    return this.total;
  }
  override restore(state: number): void {
    this.total = state;
  }
}

const node = await Node.start();
const counter = await node.join("/downstream/counter", new Counter());
await counter.send(Add, { n: 2 });
const replies = await counter.query(Add, { n: 3 }, { reply: z.number() });
console.log(JSON.stringify(replies));
await node.close();
`;

Deno.test("a project outside the repository imports the package through a local link, defines an actor, joins a group, and passes deno check and a run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cohort-downstream-" });
  try {
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({
        imports: {
          "@cohort/cohort": `${checkout}mod.ts`,
          "zod": "npm:zod@^4",
        },
      }),
    );
    await Deno.writeTextFile(`${dir}/main.ts`, MAIN);
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args,
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const check = await run(["check", "main.ts"]);
    assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
    const result = await run([
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "main.ts",
    ]);
    assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
    const replies = JSON.parse(new TextDecoder().decode(result.stdout));
    assert.equal(replies.length, 1);
    assert.equal(replies[0].ok, true);
    assert.equal(replies[0].value, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
