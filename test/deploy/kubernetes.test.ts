/**
 * deploy/kubernetes, checked offline (no cluster, no kubectl): a small resolver renders each variant
 * from its kustomization.yaml the way kustomize would (resources, bases, images; any other key is
 * refused, so it never silently skips a transformation), and every file in a kustomization's folder
 * is one of its resources. Every object is validated against Kubernetes' and prometheus-operator's
 * schemas (kubernetes-models, @kubernetes-models/prometheus-operator) and, for unknown or misspelt
 * fields, which those schemas allow, against their TypeScript types by the compiler. Then what the
 * objects must mean together: selectors that match, probes, a hardened pod, secrets from files,
 * settings the daemon accepts, and shards that cover 0..n-1.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KUBERNETES = path.join(ROOT, 'deploy/kubernetes');
/** Files in a kustomization's folder that are deliberately not its resources. */
const NOT_RESOURCES = new Set(['secret.example.yaml']);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  [key: string]: unknown;
}
interface Rendered {
  object: K8sObject;
  file: string;
}

function readYaml(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    expect(doc.errors, file).toEqual([]);
    return doc.toJSON() as unknown;
  }).filter((d) => d !== null);
}

/** kustomize build, for the subset this project uses. */
function render(dir: string): Rendered[] {
  const [kustomization] = readYaml(path.join(dir, 'kustomization.yaml')) as Record<string, unknown>[];
  const { apiVersion, kind, resources = [], images = [], ...rest } = kustomization as {
    apiVersion: string; kind: string; resources?: string[]; images?: { name: string; newName?: string; newTag?: string }[];
  };
  expect([apiVersion, kind]).toEqual(['kustomize.config.k8s.io/v1beta1', 'Kustomization']);
  expect(Object.keys(rest), `${dir}: keys this resolver does not apply`).toEqual([]);
  const listed = new Set(resources.filter((r) => !r.includes('/')));
  for (const file of readdirSync(dir)) {
    if (!/\.ya?ml$/.test(file) || file === 'kustomization.yaml' || NOT_RESOURCES.has(file)) continue;
    expect(listed.has(file), `${path.relative(ROOT, dir)}/${file} is in no kustomization's resources`).toBe(true);
  }
  const out: Rendered[] = [];
  for (const resource of resources) {
    const target = path.join(dir, resource);
    if (statSync(target).isDirectory()) out.push(...render(target));
    else out.push(...readYaml(target).map((object) => ({ object: object as K8sObject, file: path.relative(ROOT, target) })));
  }
  for (const image of images) {
    for (const { object } of out) {
      for (const container of podSpecOf(object)?.containers ?? []) {
        if (container.image === image.name) container.image = `${image.newName ?? image.name}${image.newTag ? `:${image.newTag}` : ''}`;
      }
    }
  }
  return out;
}

interface Probe { httpGet?: { path: string; port: string | number; scheme?: string } }
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  containers: Container[];
  securityContext?: Record<string, unknown>;
  volumes?: { name: string; secret?: { secretName: string } }[];
  automountServiceAccountToken?: boolean;
}
interface PodTemplate { metadata: { labels: Record<string, string> }; spec: PodSpec }

function templateOf(object: K8sObject): PodTemplate | undefined {
  return ['Deployment', 'StatefulSet', 'Job'].includes(object.kind) ? (object.spec!.template as PodTemplate) : undefined;
}
function podSpecOf(object: K8sObject): PodSpec | undefined {
  return templateOf(object)?.spec;
}
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The schema models by apiVersion/kind, and the module and interface of their TypeScript types. */
const MODELS: Record<string, { module: string; type: string }> = {
  'v1/ServiceAccount': { module: 'kubernetes-models/v1/ServiceAccount', type: 'IServiceAccount' },
  'v1/Service': { module: 'kubernetes-models/v1/Service', type: 'IService' },
  'v1/ConfigMap': { module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/Secret': { module: 'kubernetes-models/v1/Secret', type: 'ISecret' },
  'apps/v1/Deployment': { module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  'apps/v1/StatefulSet': { module: 'kubernetes-models/apps/v1/StatefulSet', type: 'IStatefulSet' },
  'batch/v1/Job': { module: 'kubernetes-models/batch/v1/Job', type: 'IJob' },
  'policy/v1/PodDisruptionBudget': { module: 'kubernetes-models/policy/v1/PodDisruptionBudget', type: 'IPodDisruptionBudget' },
  'networking.k8s.io/v1/NetworkPolicy': { module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', type: 'INetworkPolicy' },
  'monitoring.coreos.com/v1/ServiceMonitor': { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', type: 'IServiceMonitor' },
  'monitoring.coreos.com/v1/PrometheusRule': { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule', type: 'IPrometheusRule' },
};

const VARIANTS = { deployment: render(KUBERNETES), sharded: render(path.join(KUBERNETES, 'sharded')) };
const ALL: Rendered[] = [
  ...Object.values(VARIANTS).flat(),
  ...readYaml(path.join(KUBERNETES, 'secret.example.yaml')).map((object) => ({ object: object as K8sObject, file: 'deploy/kubernetes/secret.example.yaml' })),
];
const SCRATCH = path.join(ROOT, 'node_modules/.cache/mirrorstate-kubernetes-test');
afterAll(() => rmSync(SCRATCH, { recursive: true, force: true }));

describe('deploy/kubernetes', () => {
  it('renders each variant with one workload and every shared resource', () => {
    const kinds = (r: Rendered[]) => r.map(({ object }) => `${object.kind}/${object.metadata.name}`).sort();
    const shared = [
      'ConfigMap/mirrorstate-dashboard', 'Job/mirrorstate-migrate', 'NetworkPolicy/mirrorstate', 'PodDisruptionBudget/mirrorstate',
      'PrometheusRule/mirrorstate', 'Service/mirrorstate', 'ServiceAccount/mirrorstate', 'ServiceMonitor/mirrorstate',
    ];
    expect(kinds(VARIANTS.deployment)).toEqual([...shared, 'Deployment/mirrorstate'].sort());
    expect(kinds(VARIANTS.sharded)).toEqual([...shared, 'Service/mirrorstate-pods', 'StatefulSet/mirrorstate'].sort());
  });

  it.each(ALL.map((r) => [`${r.file}: ${r.object.kind}/${r.object.metadata.name}`, r] as const))('%s passes its schema', async (_name, { object }) => {
    const model = MODELS[`${object.apiVersion}/${object.kind}`];
    expect(model, `no schema model for ${object.apiVersion} ${object.kind}`).toBeDefined();
    const module = (await import(model!.module)) as Record<string, new (data: unknown) => { validate(): void }>;
    const Model = module[model!.type.slice(1)]!;
    expect(() => new Model(object).validate()).not.toThrow();
  });

  it('has no field the Kubernetes and prometheus-operator types do not know (the TypeScript compiler checks)', () => {
    // An object literal assigned to its type: the compiler refuses any excess (e.g. misspelt) field.
    mkdirSync(SCRATCH, { recursive: true });
    const types = [...new Set(ALL.map(({ object }) => `${object.apiVersion}/${object.kind}`))];
    const lines = types.map((t) => `import type { ${MODELS[t]!.type} } from '${MODELS[t]!.module}';`);
    ALL.forEach(({ object, file }, i) => {
      lines.push(`// ${file}`, `export const r${i}: ${MODELS[`${object.apiVersion}/${object.kind}`]!.type} = ${JSON.stringify(object, null, 2)};`);
    });
    writeFileSync(path.join(SCRATCH, 'manifests.ts'), lines.join('\n'));
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', path.join(SCRATCH, 'manifests.ts')], { encoding: 'utf8', cwd: ROOT });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });

  describe.each(Object.entries(VARIANTS))('the %s variant', (variant, rendered) => {
    const objects = rendered.map((r) => r.object);
    const one = (kind: string, name = 'mirrorstate') => objects.find((o) => o.kind === kind && o.metadata.name === name)!;
    const workload = objects.find((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')!;
    const pods = templateOf(workload)!;
    const container = pods.spec.containers[0]!;

    it('serves the pods through the Service that the ServiceMonitor scrapes, once', () => {
      const service = one('Service');
      expect(matches(service.spec!.selector as Record<string, string>, pods.metadata.labels)).toBe(true);
      const monitor = one('ServiceMonitor').spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
      const scraped = objects.filter((o) => o.kind === 'Service' && matches(monitor.selector.matchLabels, o.metadata.labels ?? {}));
      expect(scraped.map((s) => s.metadata.name)).toEqual(['mirrorstate']);
      const ports = (service.spec!.ports as { name: string; targetPort: string }[]);
      expect(ports.map((p) => p.name)).toContain(monitor.endpoints[0]!.port);
      expect(monitor.endpoints[0]!.path).toBe('/metrics');
      expect(container.ports!.map((p) => p.name)).toContain(ports[0]!.targetPort);
      expect(container.ports![0]!.containerPort).toBe(9477);
    });

    it('keeps one pod at a time out (PodDisruptionBudget) and lets only HTTP in (NetworkPolicy)', () => {
      const pdb = one('PodDisruptionBudget').spec as { selector: { matchLabels: Record<string, string> }; maxUnavailable: number };
      expect(matches(pdb.selector.matchLabels, pods.metadata.labels)).toBe(true);
      expect(pdb.maxUnavailable).toBe(1);
      const policy = one('NetworkPolicy').spec as { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: { ports: { port: number }[] }[] };
      for (const o of objects.filter(templateOf)) expect(matches(policy.podSelector.matchLabels, templateOf(o)!.metadata.labels), o.kind).toBe(true);
      expect(policy.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(policy.ingress.flatMap((rule) => rule.ports.map((p) => p.port))).toEqual([9477]);
    });

    it('probes /healthz and /readyz and sets resources', () => {
      for (const probe of [container.startupProbe, container.livenessProbe]) expect(probe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
      expect(container.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
      expect(container.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(container.resources?.limits?.memory).toEqual(expect.any(String));
    });

    it('runs every pod hardened: numeric non-root user, read-only root, no capabilities, seccomp', () => {
      const imageUser = /^USER\s+(\d+):(\d+)$/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))!;
      for (const o of objects.filter(templateOf)) {
        const spec = podSpecOf(o)!;
        expect(spec.automountServiceAccountToken, o.kind).toBe(false);
        expect(spec.securityContext, o.kind).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        for (const c of spec.containers) {
          expect(c.securityContext, `${o.kind} ${c.name}`).toEqual({
            allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true,
            runAsUser: Number(imageUser[1]), runAsGroup: Number(imageUser[2]),
            capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
          });
          expect(c.image).toMatch(/^mirrorstate:\d+\.\d+\.\d+/);
        }
      }
    });

    it('reads every secret from a file of a mounted Secret, and the daemon accepts its settings', () => {
      const dir = path.join(SCRATCH, variant);
      mkdirSync(dir, { recursive: true });
      for (const o of objects.filter(templateOf)) {
        const spec = podSpecOf(o)!;
        for (const c of spec.containers) {
          const secretMounts = (c.volumeMounts ?? []).filter((m) => spec.volumes?.find((v) => v.name === m.name)?.secret);
          const env: Record<string, string> = {};
          for (const e of c.env ?? []) {
            expect(e.name, 'a secret in the pod spec').not.toMatch(/^(DATABASE_URL|MIRRORSTATE_.*(URL|TOKEN))$/);
            if (e.name.endsWith('_FILE')) {
              expect(secretMounts.some((m) => e.value!.startsWith(`${m.mountPath}/`)), `${e.name} outside a mounted Secret`).toBe(true);
              // The file the Secret's key becomes, here with a test value.
              const file = path.join(dir, path.basename(e.value!));
              writeFileSync(file, 'postgres://mirrorstate@db:5432/platform\n');
              env[e.name] = file;
            } else if (e.value !== undefined) env[e.name] = e.value;
          }
          const shardEnv = (i: number) => ({ ...env, POD_NAME: `${o.metadata.name}-${i}`, MIRRORSTATE_POD_INDEX: '' });
          if (o.kind === 'StatefulSet') {
            const replicas = o.spec!.replicas as number;
            expect(Number(env.MIRRORSTATE_METRICS_TOTAL_SHARDS), 'MIRRORSTATE_METRICS_TOTAL_SHARDS equals replicas').toBe(replicas);
            const shards = Array.from({ length: replicas }, (_, i) => loadConfig(shardEnv(i)).metricsShard);
            expect(shards).toEqual(Array.from({ length: replicas }, (_, i) => ({ index: i, count: replicas })));
            const fromLabel = c.env!.find((e) => e.name === 'MIRRORSTATE_POD_INDEX')!.valueFrom!.fieldRef!.fieldPath;
            expect(fromLabel).toBe("metadata.labels['apps.kubernetes.io/pod-index']");
          } else {
            expect(loadConfig(env).metricsShard).toEqual({ index: 0, count: 1 });
          }
          expect(loadConfig(o.kind === 'StatefulSet' ? shardEnv(0) : env).databaseUrl).toBe('postgres://mirrorstate@db:5432/platform');
        }
      }
    });
  });

  it('runs the same pod in the Deployment and the StatefulSet but for the shard settings', () => {
    const template = (objects: Rendered[], kind: string) => structuredClone(templateOf(objects.find((r) => r.object.kind === kind)!.object)!);
    const sharded = template(VARIANTS.sharded, 'StatefulSet');
    const shardSettings = ['MIRRORSTATE_METRICS_SHARD', 'MIRRORSTATE_METRICS_TOTAL_SHARDS', 'MIRRORSTATE_POD_INDEX', 'POD_NAME'];
    for (const c of sharded.spec.containers) c.env = c.env!.filter((e) => !shardSettings.includes(e.name));
    expect(sharded).toEqual(template(VARIANTS.deployment, 'Deployment'));
  });

  it('ships the dashboard for the sidecar and the rules file as a PrometheusRule', () => {
    const objects = VARIANTS.deployment.map((r) => r.object);
    const configMap = objects.find((o) => o.kind === 'ConfigMap')!;
    expect(configMap.metadata.labels?.grafana_dashboard).toBe('1');
    expect(configMap.data!['mirrorstate.json']).toBe(readFileSync(path.join(ROOT, 'grafana/dashboards/mirrorstate.json'), 'utf8'));
    const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
    const rulesFile = readYaml(path.join(ROOT, 'grafana/alerts/mirrorstate.rules.yml'))[0] as { groups: unknown };
    expect(rule.spec!.groups).toEqual(rulesFile.groups);
  });
});
