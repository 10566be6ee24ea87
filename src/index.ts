/**
 * The package's public API (`import … from 'mirrorstate'`): what a producer needs to publish state
 * updates the daemon will accept, validated by the same code the daemon runs. Importing it starts
 * nothing and changes no global state.
 */
export {
  createProducer,
  createProducerBoss,
  type IndexedFieldError,
  InvalidUpdateError,
  type Producer,
  type ProducerOptions,
  publishUpdates,
  type PublishOptions,
  type StatusInput,
  type TableInput,
  type UpdateInput,
  validateUpdates,
} from './publish.js';
export { DEAD_LETTER_QUEUE, UPDATES_QUEUE } from './queue/boss.js';
export {
  type FieldError,
  MAX_FUTURE_SKEW_MS,
  MAX_UPDATES_PER_MESSAGE,
  parseMessage,
  parseStatus,
  parseTimestamp,
  parseUpdate,
  type ParseResult,
  type StateUpdate,
  type Status,
  statusCode,
  STATUSES,
  type TableEntry,
  type TableSnapshot,
  type UpdateError,
  WAL_STATUSES,
  type WalStatus,
} from './update.js';
