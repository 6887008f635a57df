/**
 * Small types shared by every part of the group engine.
 *
 * @module
 */

/** A member's name in its group (unique in the group; an excluded name never returns). */
export type MemberId = string;

/** An installed view: its id and members in the order every member sees. */
export interface GroupView {
  /** The view's id; views are installed in increasing order. */
  readonly viewId: number;
  /** The members, in the same order at every member. */
  readonly members: readonly MemberId[];
}
