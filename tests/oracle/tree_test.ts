import { until } from "../_until.ts";
import assert from "node:assert/strict";
import { OracleClient, OracleError } from "../../oracle/client.ts";
import { type OracleGroup, startOracleGroup } from "../../oracle/server.ts";
import { OracleTreeClient } from "../../oracle/tree_client.ts";
import { TREE_CHANNEL } from "../../oracle/commands.ts";
import { TcpTransport } from "../../transport/tcp_transport.ts";
import { SystemClock } from "../../runtime/clock.ts";
import { CryptoRandom } from "../../runtime/random.ts";

/** A root and one child group "A" (owning `/a`) in this process, on TCP. */
async function startTree(): Promise<{
  root: OracleGroup;
  child: OracleGroup;
  operator: OracleClient;
  stop(): Promise<void>;
}> {
  const root = await startOracleGroup({ size: 3 });
  const child = await startOracleGroup({
    size: 3,
    tree: { name: "A", parent: root.replicas, syncMs: 20 },
  });
  const operator = await OracleClient.connect({ replicas: root.replicas });
  await operator.delegate("/a", "A", child.replicas);
  return {
    root,
    child,
    operator,
    async stop() {
      await operator.close();
      await child.stop();
      await root.stop();
    },
  };
}

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (error) {
    if (error instanceof OracleError) return error.code;
    throw error;
  }
}

Deno.test("oracle tree on TCP: the root redirects a delegated path, the child adopts it, a tree client follows", async () => {
  const tree = await startTree();
  const client = await OracleTreeClient.connect({
    replicas: tree.root.replicas,
  });
  try {
    const { seq } = await client.append("/a/log", "first");
    assert.equal(seq, 1);
    await client.append("/top/log", "at the root");
    // The data is in the child group: the root says where it moved.
    const moved = await tree.operator.read("/a/log", 1, 10).then(
      () => undefined,
      (error: OracleError) => error,
    );
    assert.equal(moved?.code, "moved");
    assert.equal(moved?.delegation?.prefix, "/a");
    assert.equal(moved?.delegation?.group, "A");
    assert.deepEqual(moved?.delegation?.replicas, tree.child.replicas);
    // A plain client of a child group opens its session at the root first,
    // under the same id: the child ends sessions the root does not have.
    const home = await OracleClient.connect({ replicas: tree.root.replicas });
    const direct = await OracleClient.connect({
      replicas: tree.child.replicas,
      id: home.session,
    });
    try {
      const read = await direct.read("/a/log", 1, 10);
      assert.deepEqual(read.events.map((e) => e.data), ["first"]);
      // The child owns only what was delegated to it.
      assert.equal(await codeOf(direct.read("/top/log", 1, 10)), "not_owner");
      const childTree = await direct.getTree();
      assert.deepEqual(childTree.owns, ["/a"]);
    } finally {
      await direct.close();
      await home.close();
    }
    // Each replica's status shows its group's place in the tree.
    for (const server of tree.child.servers.values()) {
      const status = server.status().tree;
      assert.equal(status.name, "A");
      assert.deepEqual(status.delegations, []);
    }
    await until(
      "every replica of A to have applied the adoption",
      () =>
        [...tree.child.servers.values()].every((s) =>
          s.status().tree.owns.join() === "/a"
        ),
      5_000,
    );
    const rootStatus = tree.root.servers.get("1")!.status().tree;
    assert.equal(rootStatus.name, null);
    assert.deepEqual(rootStatus.owns, ["/"]);
    assert.deepEqual(rootStatus.delegations.map((d) => d.group), ["A"]);
    const rootTree = await tree.operator.getTree();
    assert.deepEqual(rootTree.owns, ["/"]);
    assert.deepEqual(rootTree.delegations.map((d) => [d.prefix, d.group]), [
      ["/a", "A"],
    ]);
    const events = await tree.operator.read(TREE_CHANNEL, 1, 10);
    assert.deepEqual(events.events.map((e) => e.data), [{
      type: "delegate",
      prefix: "/a",
      group: "A",
      replicas: tree.child.replicas,
    }]);
  } finally {
    await client.close();
    await tree.stop();
  }
});

Deno.test("oracle tree on TCP: OracleTreeClient.list routes by the prefix; / at the root lists only the root's own entries", async () => {
  const tree = await startTree();
  const client = await OracleTreeClient.connect({
    replicas: tree.root.replicas,
  });
  try {
    const child = await client.lock("/a/l");
    const root = await client.lock("/top/l");
    assert.deepEqual(await client.list("locks", "/a"), {
      items: [{
        path: "/a/l",
        holder: client.session,
        token: child.token,
        waiters: 0,
      }],
      next: null,
    });
    assert.deepEqual(await client.list("locks", "/"), {
      items: [{
        path: "/top/l",
        holder: client.session,
        token: root.token,
        waiters: 0,
      }],
      next: null,
    });
    // A plain client of the root is told where the prefix moved.
    const moved = await tree.operator.list("locks", "/a/x").then(
      () => undefined,
      (error: OracleError) => error,
    );
    assert.equal(moved?.code, "moved");
    assert.equal(moved?.delegation?.group, "A");
  } finally {
    await client.close();
    await tree.stop();
  }
});

Deno.test("oracle tree on TCP: a prefix with state at the parent cannot be delegated, nor moved", async () => {
  const tree = await startTree();
  try {
    await tree.operator.append("/busy/log", 1);
    assert.equal(
      await codeOf(tree.operator.delegate("/busy", "B", tree.child.replicas)),
      "delegation",
    );
    assert.equal(
      await codeOf(tree.operator.delegate("/a", "B", tree.child.replicas)),
      "delegation",
    );
    // The same delegation again is accepted (a retry).
    await tree.operator.delegate("/a", "A", tree.child.replicas);
  } finally {
    await tree.stop();
  }
});

Deno.test("oracle tree on TCP: a session the root ends is ended in the child too: its lock and membership there are released", async () => {
  const tree = await startTree();
  // The holder's link to the root is a transport this test can cut.
  const rootLink = await TcpTransport.start({
    id: "holder-root-link",
    peers: tree.root.replicas,
  });
  const holder = new OracleTreeClient(rootLink, {
    replicas: Object.keys(tree.root.replicas),
    clock: new SystemClock(),
    random: new CryptoRandom(),
    id: "holder",
    sessionTtlMs: 1_000,
    requestTimeoutMs: 100,
    connectGroup: (delegation, session) =>
      TcpTransport.start({
        id: `${session}-${delegation.group}`,
        peers: delegation.replicas,
      }),
  });
  const watcher = await OracleTreeClient.connect({
    replicas: tree.root.replicas,
  });
  let expired = 0;
  holder.onSessionExpired(() => expired++);
  try {
    await holder.open();
    const { token } = await holder.lock("/a/lock");
    assert.ok(token > 0);
    await holder.join("/a/group", "m1");
    await until(
      "the member's view",
      async () =>
        (await watcher.getView("/a/group")).view?.members.length === 1,
      5_000,
    );
    assert.equal((await watcher.getLock("/a/lock")).holder, "holder");
    // Cut the holder off from the root only: its keep-alives still reach
    // the child, but the root expires the session after its TTL, and the
    // child's leader, learning it from the root, ends it there too.
    await rootLink.close();
    await until(
      "the child to release the lock of a session the root ended",
      async () => (await watcher.getLock("/a/lock")).holder === null,
      10_000,
    );
    await until(
      "the child to force the member of a session the root ended out",
      async () => {
        const { view, proposal } = await watcher.getView("/a/group");
        return proposal === null && view?.members.length === 0;
      },
      10_000,
    );
    // The holder learns it from the child, and its whole tree session ends.
    assert.equal(await codeOf(holder.append("/a/log", 1)), "session_expired");
    await until("the expiry callback", () => expired === 1, 5_000);
    assert.equal(expired, 1);
  } finally {
    await watcher.close();
    await holder.close();
    await tree.stop();
  }
});
