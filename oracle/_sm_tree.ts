/**
 * The Oracle state machine's place in a tree of Oracle groups: the
 * prefixes this group owns and the delegations it made, and the ownership
 * check every path operation goes through.
 *
 * A root owns every path no delegation covers; a child owns only the
 * prefixes it adopted, minus those it delegated further. Paths under
 * `/_sys` are owned by every group, except view channels, which go with
 * their group (`ownerPath`).
 *
 * @module
 */

import {
  type DelegateOp,
  type Delegation,
  type OracleErrorResult,
  type OracleTree,
  ownerPath,
} from "./commands.ts";
import { isReserved, isUnder } from "./path.ts";
import { fail, quote } from "./_sm_sessions.ts";

/** The tree table as a snapshot stores it. */
export interface TreeSnapshot {
  /** Prefixes adopted (a child's), in adoption order. */
  owns: string[];
  /** Delegations made, in order. */
  delegations: Delegation[];
}

/** `path`, then each ancestor up to and including `/`. */
function* selfAndAncestors(path: string): Generator<string> {
  let at = path;
  for (;;) {
    yield at;
    if (at === "/") return;
    const cut = at.lastIndexOf("/");
    at = cut <= 0 ? "/" : at.slice(0, cut);
  }
}

/** A delegation's deep-frozen copy, replicas sorted by id. */
export function freezeDelegation(
  prefix: string,
  group: string,
  replicas: Readonly<Record<string, string>>,
): Delegation {
  const sorted: Record<string, string> = {};
  for (const id of Object.keys(replicas).sort()) sorted[id] = replicas[id];
  return Object.freeze({ prefix, group, replicas: Object.freeze(sorted) });
}

/** Tells whether two replica maps name the same replicas at the same addresses. */
export function sameReplicas(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length &&
    keys.every((id) => Object.hasOwn(b, id) && b[id] === a[id]);
}

/** Which prefixes this group owns and which it handed to other groups. */
export class TreeTable {
  readonly #root: boolean;
  /** A child's adopted prefixes (a root owns `/` implicitly and adopts nothing). */
  readonly #owns = new Set<string>();
  readonly #delegations = new Map<string, Delegation>();

  /** `root`: this group owns every path not delegated. */
  constructor(root: boolean) {
    this.#root = root;
  }

  /**
   * Whether this group owns `path`: `undefined` when it does, `moved`
   * (with the delegation) when the path is at or under a delegated prefix,
   * `not_owner` when a child adopted no prefix at or above it.
   */
  check(path: string): OracleErrorResult | undefined {
    // The common case, on every operation: a root that delegated nothing.
    if (this.#root && this.#delegations.size === 0) return undefined;
    const owner = ownerPath(path);
    if (isReserved(owner)) return undefined;
    let owned = this.#root;
    for (const at of selfAndAncestors(owner)) {
      const delegation = this.#delegations.get(at);
      if (delegation !== undefined) {
        return {
          code: "moved",
          message: `Path ${quote(path)} belongs to Oracle group ${
            quote(delegation.group)
          } (prefix ${
            quote(delegation.prefix)
          } was delegated to it): send it there`,
          delegation,
        };
      }
      if (!owned && this.#owns.has(at)) owned = true;
    }
    if (owned) return undefined;
    const owns = this.owned();
    return {
      code: "not_owner",
      message: `This Oracle group does not own ${quote(path)} (${
        owns.length === 0
          ? "it owns nothing yet"
          : `it owns ${owns.map(quote).join(", ")}`
      }): resolve the path from the root again`,
    };
  }

  /**
   * A delegation strictly under `prefix`, if any. A scan of every
   * delegation: they are few and delegating is rare.
   */
  #delegationUnder(prefix: string): Delegation | undefined {
    for (const [at, delegation] of this.#delegations) {
      if (at !== prefix && isUnder(prefix, at)) return delegation;
    }
    return undefined;
  }

  /**
   * Decides a checked `delegate` request: refused (the group does not own
   * the prefix, a delegation lies under it, `stateUnder` names state this
   * group holds under it), nothing to do (the same delegation exists), or
   * a new delegation for {@linkcode TreeTable.delegate}.
   */
  planDelegation(
    op: DelegateOp,
    stateUnder: (prefix: string) => string | undefined,
  ): { error: OracleErrorResult } | { same: true } | { add: Delegation } {
    const { prefix, group } = op;
    const cannot = `Cannot delegate ${quote(prefix)} to Oracle group ${
      quote(group)
    }`;
    const existing = this.#delegations.get(prefix);
    if (existing !== undefined) {
      if (existing.group !== group) {
        return fail(
          "delegation",
          `${cannot}: it is delegated to Oracle group ${
            quote(existing.group)
          } already, and moving a delegation is not supported`,
        );
      }
      if (!sameReplicas(existing.replicas, op.replicas)) {
        return fail(
          "delegation",
          `${cannot} with replicas ${
            JSON.stringify(op.replicas)
          }: it is delegated to that group already with replicas ${
            JSON.stringify(existing.replicas)
          }, and changing a delegation is not supported`,
        );
      }
      return { same: true };
    }
    const notOwned = this.check(prefix);
    if (notOwned !== undefined) return { error: notOwned };
    const under = this.#delegationUnder(prefix);
    if (under !== undefined) {
      return fail(
        "delegation",
        `${cannot}: ${
          quote(under.prefix)
        } under it is delegated to Oracle group ${quote(under.group)} already`,
      );
    }
    const state = stateUnder(prefix);
    if (state !== undefined) {
      return fail(
        "delegation",
        `${cannot}: this group holds state under it (${state}); only a subtree this group never used can be delegated`,
      );
    }
    return { add: freezeDelegation(prefix, group, op.replicas) };
  }

  /** Records a delegation planned by {@linkcode TreeTable.planDelegation}. */
  delegate(delegation: Delegation): void {
    this.#delegations.set(delegation.prefix, delegation);
  }

  /** Tells whether a child has adopted `prefix` or a prefix above it. */
  adopted(prefix: string): boolean {
    for (const at of selfAndAncestors(prefix)) {
      if (this.#owns.has(at)) return true;
    }
    return false;
  }

  /** A child adopts `prefix` (valid, not yet adopted: checked by the caller). */
  adopt(prefix: string): void {
    this.#owns.add(prefix);
  }

  /** The prefixes owned, sorted: `["/"]` on a root. */
  owned(): string[] {
    return this.#root ? ["/"] : [...this.#owns].sort();
  }

  /** The owned prefixes and the delegations, sorted, as `get_tree` reads them (without `tokens`). */
  tree(): Omit<OracleTree, "tokens"> {
    return {
      owns: this.owned(),
      delegations: [...this.#delegations.values()].sort((a, b) =>
        a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0
      ),
    };
  }

  toSnapshot(): TreeSnapshot {
    return {
      owns: [...this.#owns],
      delegations: [...this.#delegations.values()],
    };
  }

  /** Rebuilds a table; `snapshot` is `undefined` for a version 1 snapshot (no tree). */
  static fromSnapshot(
    root: boolean,
    snapshot: TreeSnapshot | undefined,
  ): TreeTable {
    const table = new TreeTable(root);
    for (const prefix of snapshot?.owns ?? []) table.#owns.add(prefix);
    for (const d of snapshot?.delegations ?? []) {
      table.#delegations.set(
        d.prefix,
        freezeDelegation(d.prefix, d.group, d.replicas),
      );
    }
    return table;
  }
}
