/** Small pieces of control flow shared across the daemon. */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/** `promise`, or a rejection once `ms` pass without it settling. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * For long synchronous work done in steps: the function returned yields to the event loop when
 * `sliceMs` have passed since the last yield (or since it was made), and otherwise returns at once.
 * Await it between steps.
 */
export function sliceYielder(sliceMs: number): () => Promise<void> {
  let sliceStart = performance.now();
  return async () => {
    if (performance.now() - sliceStart < sliceMs) return;
    await yieldToEventLoop();
    sliceStart = performance.now();
  };
}
