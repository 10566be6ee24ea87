/**
 * The two facts the source needs from a mirror's `flows.config_proto` (docs/peerdb.md, Where each
 * field comes from): the replication slot a CDC mirror's config names, and whether a QRep mirror
 * is an XMin mirror. PeerDB writes config_proto as plain protobuf (proto.Marshal): a CDC row holds
 * a `FlowConnectionConfigsCore` (older PeerDB: `FlowConnectionConfigs`, same field numbers), a
 * QRep row a `QRepConfig`; a QRep mirror created through PeerDB's SQL interface has none (NULL).
 *
 * Only the fields read are declared: protobuf decoding skips every other field, so PeerDB adding
 * fields changes nothing here. Bytes that do not decode give `undecodable`, and the source then
 * behaves as without a config (the default slot name, `qrep`), logging it once per mirror.
 */
import protobuf from 'protobufjs/light.js';

/** Field numbers as in PeerDB's protos/flow.proto. */
export const PEERDB_CONFIG_TYPES = protobuf.Root.fromJSON({
  nested: {
    peerdb_flow: {
      nested: {
        FlowConnectionConfigsCore: {
          fields: { flowJobName: { type: 'string', id: 1 }, replicationSlotName: { type: 'string', id: 9 } },
        },
        QRepConfig: {
          fields: { flowJobName: { type: 'string', id: 1 }, watermarkColumn: { type: 'string', id: 7 } },
        },
      },
    },
  },
});
export const CDC_CONFIG = PEERDB_CONFIG_TYPES.lookupType('peerdb_flow.FlowConnectionConfigsCore');
export const QREP_CONFIG = PEERDB_CONFIG_TYPES.lookupType('peerdb_flow.QRepConfig');

/** What the source takes from one config. */
export interface FlowConfig {
  /** A CDC mirror's slot when its config names one (else PeerDB's `peerflow_slot_<name>`). */
  slotName: string | null;
  /** A QRep mirror's watermark column (`xmin` makes an XMin mirror). */
  watermarkColumn: string | null;
  /** Why the bytes did not decode; null when they did (or there were none). */
  undecodable: string | null;
}

export const NO_CONFIG: FlowConfig = { slotName: null, watermarkColumn: null, undecodable: null };

/** Decodes one config_proto. Pure; never throws. */
export function decodeFlowConfig(bytes: Uint8Array | null, cdc: boolean): FlowConfig {
  if (bytes === null) return NO_CONFIG;
  try {
    if (cdc) {
      const m = CDC_CONFIG.toObject(CDC_CONFIG.decode(bytes)) as { replicationSlotName?: string };
      return { slotName: m.replicationSlotName || null, watermarkColumn: null, undecodable: null };
    }
    const m = QREP_CONFIG.toObject(QREP_CONFIG.decode(bytes)) as { watermarkColumn?: string };
    return { slotName: null, watermarkColumn: m.watermarkColumn || null, undecodable: null };
  } catch (err) {
    return { ...NO_CONFIG, undecodable: (err as Error).message };
  }
}
