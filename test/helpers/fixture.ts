// A server a whole test file shares: started in the file's `before`, stopped in its `after`, and
// read through a stand-in that tests hold from the top of the file, so a file says once what it
// needs instead of repeating the before/after pair and a `let` for it.
import { rmSync } from "node:fs";
import { after, before } from "node:test";
import { tempRoot } from "./fs.js";

// node:test starts a file's top-level `before` hooks without waiting for the one before it, so a
// fixture built on another waits for it through ready().
const started = new WeakMap<object, Promise<object>>();

/** The started value behind a fixture of shared(), once its `before` has run. */
export function ready<T extends object>(fixture: T): Promise<T> {
  const p = started.get(fixture);
  if (!p) throw new Error("not a shared fixture");
  return p as Promise<T>;
}

/**
 * Starts `start()` before the file's tests and `stop`s it after them. The returned object stands
 * in for the started value: reading a property before `before` ran throws rather than giving
 * undefined, so a test that runs too early fails loudly.
 */
export function shared<T extends object>(
  start: () => Promise<T>,
  stop: (value: T) => Promise<void>,
): T {
  let value: T | undefined;
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const whenStarted = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A failed start fails the file's tests through `before`; a dependent fixture sees it too.
  whenStarted.catch(() => undefined);
  before(async () => {
    try {
      value = await start();
      resolve(value);
    } catch (e) {
      reject(e);
      throw e;
    }
  });
  after(async () => {
    if (value) await stop(value);
  });
  const standIn = new Proxy({} as T, {
    get(_target, key) {
      if (!value) throw new Error(`shared fixture read before it started (${String(key)})`);
      const v = Reflect.get(value, key, value) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(value) : v;
    },
    has: (_target, key) => value !== undefined && key in value,
    ownKeys: () => (value ? Reflect.ownKeys(value) : []),
    getOwnPropertyDescriptor: (_target, key) => {
      const d = value ? Reflect.getOwnPropertyDescriptor(value, key) : undefined;
      return d && { ...d, configurable: true };
    },
  });
  started.set(standIn, whenStarted);
  return standIn;
}

/** Servers a test file starts one by one, each stopped after the file's tests. */
export function stoppedAfter<T extends { stop(): Promise<void> }>(): T[] {
  const started: T[] = [];
  after(async () => {
    for (const s of started) await s.stop();
  });
  return started;
}

/**
 * Host roots for a file's tests: `newRoot()` makes a fresh temporary one; every root made, and
 * every other path pushed on `made`, is removed after the file's tests.
 */
export function scratchRoots(defaultPrefix: string): {
  newRoot: (prefix?: string) => string;
  made: string[];
} {
  const made: string[] = [];
  after(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });
  return {
    newRoot: (prefix = defaultPrefix) => {
      const d = tempRoot(prefix);
      made.push(d);
      return d;
    },
    made,
  };
}
