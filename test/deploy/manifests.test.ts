// The Kubernetes manifests under k8s/: each kustomization renders (offline), every rendered
// object is valid for its kind, and the manifests agree with the code they deploy (env var
// names, port, probe paths, metric names, drain timing, image user).
import t from "tap";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { EnvSchema, loadConfig } from "../../src/config/env.ts";
import { COMPILED_ENTRY, ensureBuilt } from "../helpers/node.ts";
import { validateManifest } from "./k8s-schema.ts";
import { type Doc, docId, loadYaml, render } from "./kustomize.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const k8s = path.join(root, "k8s");
const targets = ["base", "overlays/dev", "overlays/prod"];
const envNames = new Set(Object.keys(EnvSchema.entries));
const exampleSecret = loadYaml(path.join(k8s, "base/secret.example.yaml"));
const byId = (docs: Doc[]) => [...docs].sort((a, b) => docId(a).localeCompare(docId(b)));
const kubectl = spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status === 0;

// Probe paths and metric names the manifests use must appear in the service's source.
const code = readdirSync(path.join(root, "src"), { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.parentPath.includes("generated"))
  .map((e) => readFileSync(path.join(e.parentPath, e.name), "utf8"));
const inSource = (s: string) => code.some((text) => text.includes(`"${s}"`));

// --- helpers over rendered documents -----------------------------------------------------

const labelsMatch = (selector: Record<string, string> = {}, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

function preStopSeconds(container: Doc): number {
  const handler = container.lifecycle?.preStop;
  if (handler?.sleep) return Number(handler.sleep.seconds);
  const cmd: string[] = handler?.exec?.command ?? [];
  return cmd[0] === "sleep" && cmd.length === 2 ? Number(cmd[1]) : 0;
}

/** Everything wrong with how a rendering fits the code and itself; empty when all is well. */
function contractProblems(docs: Doc[]): string[] {
  const problems: string[] = [];
  const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata?.name === name);
  const deployment = find("Deployment", "chatroom");
  const job = find("Job", "chatroom-migrate");
  const service = find("Service", "chatroom");
  if (!deployment || !job || !service) return ["the chatroom Deployment, Service or migration Job is missing"];
  const podLabels = deployment.spec.template.metadata.labels;
  const server: Doc = deployment.spec.template.spec.containers.find((c: Doc) => c.name === "chatroom");
  if (!server) return ["the Deployment has no container named chatroom"];
  const httpPort = server.ports?.find((p: Doc) => p.name === "http")?.containerPort;
  const metricsPort = server.ports?.find((p: Doc) => p.name === "metrics")?.containerPort;
  const resolvePort = (port: unknown) => (port === "http" ? httpPort : port === "metrics" ? metricsPort : port);

  // Environment of every container running the service's image: the names must be ones the
  // node reads, and the values must pass its own validation.
  const env: Record<string, string> = {};
  for (const [owner, pod] of [["Deployment", deployment], ["Job", job]] as const) {
    for (const c of pod.spec.template.spec.containers as Doc[]) {
      const set = (name: string, value: string, from: string) => {
        if (!envNames.has(name)) problems.push(`${from} sets ${name}, which src/config/env.ts does not read`);
        env[name] = value;
      };
      for (const ref of (c.envFrom ?? []) as Doc[]) {
        if (ref.configMapRef) {
          const cm = find("ConfigMap", ref.configMapRef.name);
          if (!cm) problems.push(`${owner} reads ConfigMap ${ref.configMapRef.name}, which is not rendered`);
          for (const [k, v] of Object.entries(cm?.data ?? {})) set(k, String(v), `ConfigMap ${ref.configMapRef.name}`);
        }
        if (ref.secretRef) {
          // Rendered (dev) or created out of band in the shape of secret.example.yaml.
          const secret = find("Secret", ref.secretRef.name) ?? exampleSecret.find((s) => s.metadata.name === ref.secretRef.name);
          if (!secret) problems.push(`${owner} reads Secret ${ref.secretRef.name}, which is neither rendered nor in secret.example.yaml`);
          for (const [k, v] of Object.entries(secret?.data ?? {})) set(k, Buffer.from(String(v), "base64").toString(), `Secret ${ref.secretRef.name}`);
          for (const [k, v] of Object.entries(secret?.stringData ?? {})) set(k, String(v), `Secret ${ref.secretRef.name}`);
        }
      }
      for (const e of (c.env ?? []) as Doc[]) set(e.name, String(e.value ?? ""), `${owner} container ${c.name}`);

      if (c.image !== server.image) problems.push(`${owner} container ${c.name} runs ${c.image}, not the server's ${server.image}`);
      const sc = c.securityContext ?? {};
      const podSc = pod.spec.template.spec.securityContext ?? {};
      if (sc.allowPrivilegeEscalation !== false || sc.readOnlyRootFilesystem !== true || !sc.capabilities?.drop?.includes("ALL")) {
        problems.push(`${owner} container ${c.name} is not locked down (privilege escalation, writable root or capabilities)`);
      }
      if (podSc.runAsNonRoot !== true || !(podSc.runAsUser > 0) || podSc.seccompProfile?.type !== "RuntimeDefault") {
        problems.push(`${owner} pod does not run as a numeric non-root user with the RuntimeDefault seccomp profile`);
      }
      const tmp = c.volumeMounts?.find((m: Doc) => m.mountPath === "/tmp");
      if (!pod.spec.template.spec.volumes?.some((v: Doc) => v.name === tmp?.name && v.emptyDir)) {
        problems.push(`${owner} container ${c.name} has no emptyDir at /tmp (the root filesystem is read-only)`);
      }
    }
  }
  let config: ReturnType<typeof loadConfig> | undefined;
  try {
    config = loadConfig(env);
  } catch (err) {
    problems.push(`the rendered environment is rejected by the node: ${(err as Error).message}`);
  }

  // Port and probes.
  const defaultPort = loadConfig({}).PORT;
  if (httpPort !== defaultPort || (config && config.PORT !== httpPort)) {
    problems.push(`container port http is ${httpPort}; the node listens on ${config?.PORT} (default ${defaultPort})`);
  }
  // Probes and metrics are served on METRICS_PORT only, a port the Service does not expose, so
  // the public Ingress cannot reach them.
  if (config && config.METRICS_PORT === undefined) problems.push("METRICS_PORT is not set: /healthz, /readyz and /metrics would be served on the public port");
  if (config?.METRICS_PORT !== undefined && metricsPort !== config.METRICS_PORT) problems.push(`container port metrics is ${metricsPort}; the node serves probes and metrics on ${config.METRICS_PORT}`);
  for (const [probe, wanted] of [["startupProbe", "/healthz"], ["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]] as const) {
    const get = server[probe]?.httpGet;
    if (get?.path !== wanted || resolvePort(get?.port) !== config?.METRICS_PORT) problems.push(`${probe} is not GET ${wanted} on port ${config?.METRICS_PORT}`);
  }
  for (const p of ["/healthz", "/readyz", "/metrics"]) if (!inSource(p)) problems.push(`probe path ${p} is not served by src/`);
  const scrape = deployment.spec.template.metadata.annotations ?? {};
  if (scrape["prometheus.io/path"] !== "/metrics" || Number(scrape["prometheus.io/port"]) !== config?.METRICS_PORT) problems.push(`Prometheus does not scrape /metrics on port ${config?.METRICS_PORT}`);

  // Drain: the kubelet kills the pod after terminationGracePeriodSeconds, counted from the
  // start of preStop; SIGTERM comes after preStop, then DRAIN_DELAY_MS, then the paced closing of
  // the sockets over DRAIN_SPREAD_MS, then the shutdown.
  if (config) {
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    const needed = preStopSeconds(server) + config.DRAIN_DELAY_MS / 1000 + config.DRAIN_SPREAD_MS / 1000 + config.SHUTDOWN_TIMEOUT_MS / 1000;
    if (grace < needed) problems.push(`terminationGracePeriodSeconds ${grace} < preStop + drain + spread + shutdown = ${needed}`);
  }

  // Wiring between objects.
  const svcPort = service.spec.ports.find((p: Doc) => p.name === "http");
  if (svcPort?.port !== 80 || resolvePort(svcPort.targetPort) !== httpPort) problems.push("Service port http is not 80 -> the container's http port");
  for (const p of service.spec.ports as Doc[]) {
    if (p !== svcPort) problems.push(`Service exposes port ${p.name ?? p.port} besides http: the Ingress could route the public to it`);
  }
  if (!labelsMatch(service.spec.selector, podLabels)) problems.push("Service selector does not select the server pods");
  if (labelsMatch(service.spec.selector, job.spec.template.metadata.labels)) problems.push("Service selector also selects migration pods");
  for (const ing of docs.filter((d) => d.kind === "Ingress")) {
    for (const rule of ing.spec.rules) {
      for (const p of rule.http.paths) {
        const b = p.backend.service;
        if (b.name !== service.metadata.name || b.port.name !== svcPort?.name) problems.push(`Ingress ${ing.metadata.name} routes to ${b.name}:${b.port.name ?? b.port.number}`);
      }
    }
    const timeout = Number(ing.metadata.annotations?.["nginx.ingress.kubernetes.io/proxy-read-timeout"]);
    if (!(timeout >= 3600)) problems.push(`Ingress ${ing.metadata.name} would cut idle WebSockets after ${timeout || 60} s`);
  }
  const hpa = docs.find((d) => d.kind === "HorizontalPodAutoscaler");
  if (hpa?.spec.scaleTargetRef.kind !== "Deployment" || hpa.spec.scaleTargetRef.name !== "chatroom") problems.push("no HorizontalPodAutoscaler scales the Deployment");
  if (deployment.spec.replicas !== undefined) problems.push("the Deployment sets replicas, which fights the HorizontalPodAutoscaler");
  for (const m of (hpa?.spec.metrics ?? []) as Doc[]) {
    if (m.type === "Pods" && !inSource(m.pods.metric.name)) problems.push(`HPA metric ${m.pods.metric.name} is not registered in src/`);
  }
  if ((hpa?.spec.maxReplicas ?? 1) > 1 && (!config?.REDIS_URL || !config.DATABASE_URL)) {
    problems.push("more than one replica needs DATABASE_URL and REDIS_URL (otherwise each node has its own store and bus)");
  }
  const pdb = docs.find((d) => d.kind === "PodDisruptionBudget");
  if (!labelsMatch(pdb?.spec.selector.matchLabels, podLabels)) problems.push("no PodDisruptionBudget selects the server pods");
  const np = docs.find((d) => d.kind === "NetworkPolicy");
  for (const labels of [podLabels, job.spec.template.metadata.labels]) {
    if (!labelsMatch(np?.spec.podSelector.matchLabels, labels)) problems.push(`NetworkPolicy does not select pods labelled ${JSON.stringify(labels)}`);
  }
  const allowed = (rules: Doc[] = []) => rules.flatMap((r) => (r.ports ?? []).map((p: Doc) => `${p.protocol ?? "TCP"}/${resolvePort(p.port)}`));
  if (!allowed(np?.spec.ingress).includes(`TCP/${httpPort}`)) problems.push(`NetworkPolicy does not admit TCP ${httpPort}`);
  if (!allowed(np?.spec.ingress).includes(`TCP/${metricsPort}`)) problems.push(`NetworkPolicy does not admit TCP ${metricsPort} (kubelet probes, Prometheus)`);
  const backends = [config?.DATABASE_URL, config?.REDIS_URL].flatMap((url) => {
    if (!url) return [];
    const u = new URL(url);
    return [{ host: u.hostname, port: Number(u.port || (u.protocol.startsWith("redis") ? 6379 : 5432)) }];
  });
  for (const wanted of ["UDP/53", ...backends.map((b) => `TCP/${b.port}`)]) {
    if (!allowed(np?.spec.egress).includes(wanted)) problems.push(`NetworkPolicy blocks egress to ${wanted}`);
  }
  // An in-cluster backend (a host without dots) must be rendered alongside.
  for (const b of backends.filter((b) => !b.host.includes("."))) {
    if (!find("Service", b.host)?.spec.ports.some((p: Doc) => p.port === b.port)) problems.push(`no rendered Service ${b.host} on port ${b.port}`);
  }

  // The Job runs a script of the compiled build (the image has no TypeScript).
  const script = (job.spec.template.spec.containers[0].command as string[]).find((a) => /\.[cm]?[jt]s$/.test(a));
  if (!script?.startsWith("dist/") || !script.endsWith(".js") || !existsSync(path.join(root, script))) {
    problems.push(`the migration Job runs ${script}, which npm run build does not produce`);
  }
  return [...new Set(problems)];
}

// --- the tests ---------------------------------------------------------------------------

ensureBuilt(); // the Job's script is a build output

for (const target of targets) {
  t.test(`k8s/${target}`, async (t) => {
    const docs = render(path.join(k8s, target));
    t.ok(docs.length > 0, "renders");

    for (const doc of docs) t.doesNotThrow(() => validateManifest(doc), `${docId(doc)} matches its schema`);

    t.test("renders like kubectl kustomize", { skip: !kubectl && "kubectl is not installed" }, async (t) => {
      const out = execFileSync("kubectl", ["kustomize", path.join(k8s, target)], { encoding: "utf8" });
      t.same(byId(docs), byId(parseAllDocuments(out).map((d) => d.toJS() as Doc)));
    });

    t.same(contractProblems(docs), [], "agrees with the code");
  });
}

t.test("secret.example.yaml", async (t) => {
  t.equal(exampleSecret.length, 1);
  for (const doc of exampleSecret) t.doesNotThrow(() => validateManifest(doc), "matches the Secret schema");
  const [base] = loadYaml(path.join(k8s, "base/kustomization.yaml"));
  t.notOk(base?.resources.includes("secret.example.yaml"), "is not rendered: real values never live in the repository");
});

t.test("Dockerfile agrees with the manifests", async (t) => {
  const dockerfile = readFileSync(path.join(root, "Dockerfile"), "utf8");
  const deployment = render(path.join(k8s, "base")).find((d) => d.kind === "Deployment")!;
  t.match(dockerfile, new RegExp(`^USER ${deployment.spec.template.spec.securityContext.runAsUser}(:|$)`, "m"), "USER is the pod's runAsUser");
  t.match(dockerfile, new RegExp(`^EXPOSE ${loadConfig({}).PORT}$`, "m"), "EXPOSE is the default PORT");
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
  t.same(cmd && JSON.parse(cmd), ["node", COMPILED_ENTRY], "node is PID 1 (so SIGTERM reaches it) and runs the compiled build");
  t.match(dockerfile, /^FROM \$\{NODE_IMAGE\}/m);
  t.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m, "glibc Node 20, which uWebSockets.js has binaries for");
});

// The checks above are only worth something if they can fail.
t.test("the checks catch broken manifests", async (t) => {
  const fresh = () => render(path.join(k8s, "overlays/dev"));
  // Only what the breakage adds counts, whatever the state of the rest of the repository.
  const baseline = contractProblems(fresh());
  const onlyProblem = (docs: Doc[], expected: RegExp, what: string) => {
    const added = contractProblems(docs).filter((p) => !baseline.includes(p));
    t.equal(added.length, 1, `${what}: one problem`);
    t.match(added[0], expected, `${what}: the right one`);
  };
  const deploymentOf = (docs: Doc[]) => docs.find((d) => d.kind === "Deployment" && d.metadata.name === "chatroom")!;

  let docs = fresh();
  deploymentOf(docs).spec.template.spec.containers[0].ports[0].containerPort = "8000";
  t.throws(() => validateManifest(deploymentOf(docs)), /containerPort must be integer/, "schema: wrong type");
  docs = fresh();
  delete deploymentOf(docs).spec.selector;
  t.throws(() => validateManifest(deploymentOf(docs)), /required property selector/, "schema: missing required field");
  t.throws(() => validateManifest({ apiVersion: "v1", kind: "Pet", metadata: { name: "x" } }), /no schema/, "schema: unknown kind");

  docs = fresh();
  docs.find((d) => d.kind === "ConfigMap")!.data.NOT_A_SETTING = "1";
  onlyProblem(docs, /NOT_A_SETTING, which src\/config\/env\.ts does not read/, "env var name");
  docs = fresh();
  docs.find((d) => d.kind === "ConfigMap")!.data.DRAIN_DELAY_MS = "30000";
  onlyProblem(docs, /terminationGracePeriodSeconds 30 < preStop \+ drain \+ spread \+ shutdown = 50/, "drain budget");
  docs = fresh();
  docs.find((d) => d.kind === "ConfigMap")!.data.DRAIN_SPREAD_MS = "15000";
  onlyProblem(docs, /terminationGracePeriodSeconds 30 < preStop \+ drain \+ spread \+ shutdown = 35/, "drain spread counts in the budget");
  docs = fresh();
  deploymentOf(docs).spec.template.spec.containers[0].readinessProbe.httpGet.path = "/ready";
  onlyProblem(docs, /readinessProbe is not GET \/readyz/, "probe path");
  docs = fresh();
  deploymentOf(docs).spec.template.spec.containers[0].readinessProbe.httpGet.port = "http";
  onlyProblem(docs, /readinessProbe is not GET \/readyz on port 9090/, "probe on the public port");
  docs = fresh();
  docs.find((d) => d.kind === "Service" && d.metadata.name === "chatroom")!.spec.ports.push({ name: "metrics", port: 9090, targetPort: "metrics" });
  onlyProblem(docs, /Service exposes port metrics besides http/, "metrics port on the Service");
  docs = fresh();
  delete docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "chatroom")!.data.METRICS_PORT;
  t.ok(contractProblems(docs).some((p) => /METRICS_PORT is not set/.test(p)), "probes on the public port: METRICS_PORT missing");
  docs = fresh();
  docs.find((d) => d.kind === "Job")!.spec.template.spec.containers[0].command = ["node", "--import", "tsx", "src/store/migrate-cli.ts"];
  onlyProblem(docs, /migration Job runs src\/store\/migrate-cli\.ts, which npm run build does not produce/, "migration script");
  docs = fresh();
  docs.find((d) => d.kind === "Service" && d.metadata.name === "redis")!.metadata.name = "cache";
  onlyProblem(docs, /no rendered Service redis on port 6379/, "dev backend");
});
