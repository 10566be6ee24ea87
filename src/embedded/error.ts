/**
 * A start-up failure of the embedded PostgreSQL. Its message is the whole story for the operator:
 * what failed, why (the server's own last words when it has any), and what to do. The CLI prints
 * it as one line, without a stack.
 */
export class EmbeddedStartError extends Error {
  override name = 'EmbeddedStartError';
}
