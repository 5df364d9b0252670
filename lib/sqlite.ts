// Prepared statements of one node:sqlite connection, shared by the control-plane outbox
// (lib/controlplane/store.ts) and the operator API's definition store (lib/store/DefinitionStore.ts).
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';

/** A row as node:sqlite returns it. */
export type Row = Record<string, unknown>;

/**
 * Each SQL text is prepared once, on first use, and reused: the stores run the same few statements
 * many times. `guard` runs before every statement (a closed store throws there).
 * @internal
 */
export class Statements {
  readonly #db: DatabaseSync;
  readonly #guard: (() => void) | undefined;
  readonly #cache = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, guard?: () => void) {
    this.#db = db;
    this.#guard = guard;
  }

  statement(sql: string): StatementSync {
    this.#guard?.();
    let s = this.#cache.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#cache.set(sql, s);
    }
    return s;
  }

  /** Runs a statement; the number of rows it changed. */
  run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.statement(sql).run(...params).changes);
  }

  all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.statement(sql).all(...params) as Row[];
  }

  get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.statement(sql).get(...params) as Row | undefined;
  }

  /** Forgets every prepared statement (before the connection closes). */
  clear(): void {
    this.#cache.clear();
  }
}
