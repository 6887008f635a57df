import assert from "node:assert/strict";
import { OracleClient } from "../../oracle/client.ts";
import { startOracleGroup } from "../../oracle/server.ts";
import { OracleStateMachine } from "../../oracle/state_machine.ts";
import { parseClientFrame } from "../../oracle/validate.ts";

Deno.test("get_status: the leader answers with its id, term, commit and applied index and the live sessions; inspect answers locally", async () => {
  const group = await startOracleGroup({ size: 3 });
  const client = await OracleClient.connect({ replicas: group.replicas });
  const other = await OracleClient.connect({ replicas: group.replicas });
  try {
    await client.append("/log", 1);
    const status = await client.groupStatus();
    const leader = group.servers.get(status.leader ?? "")!.status();
    assert.equal(leader.role, "leader");
    assert.equal(status.term, leader.term);
    assert.ok(
      status.commitIndex >= 1 && status.commitIndex <= leader.commitIndex,
    );
    assert.ok(status.appliedIndex >= status.commitIndex - 1);
    assert.equal(status.sessions, 2);
    for (const server of group.servers.values()) {
      const local = server.inspect({ op: "get_status" });
      assert.ok("ok" in local);
      const ok = local.ok as Record<string, unknown>;
      assert.equal(ok.term, server.status().term);
      assert.equal(ok.commitIndex, server.status().commitIndex);
      assert.ok(ok.leader === status.leader || ok.leader === null);
    }
  } finally {
    await other.close();
    await client.close();
    await group.stop();
  }
});

Deno.test("get_status: the wire takes no fields beyond op, and the state machine checks the session like any read", () => {
  const frame = (op: unknown) => ({ t: "req", s: "c-1", r: 1, a: 0, op });
  assert.ok("frame" in parseClientFrame(frame({ op: "get_status" })));
  assert.ok("error" in parseClientFrame(frame({ op: "get_status", x: 1 })));
  const sm = new OracleStateMachine();
  assert.deepEqual(sm.read(undefined, { op: "get_status" }), {
    ok: { sessions: 0 },
  });
  const expired = sm.read("c-nobody", { op: "get_status" });
  assert.ok("error" in expired && expired.error.code === "session_expired");
});
