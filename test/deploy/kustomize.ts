// The part of kustomize that k8s/ uses, so the manifests can be rendered with no kustomize or
// kubectl installed: resources (files and directories), strategic-merge patches given by
// path, images and namespace. Anything else in a kustomization.yaml is an error rather than
// silently ignored. manifests.test.ts compares this against `kubectl kustomize` when kubectl
// is on the PATH.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

// Rendered manifests are free-form YAML; the tests narrow what they read.
export type Doc = Record<string, any>;

const FIELDS = new Set(["apiVersion", "kind", "resources", "patches", "namespace", "images"]);

// List fields that a strategic merge patch merges item by item (by this key) for the kinds
// used here; every other list in a patch replaces the original. `ports` is keyed differently
// in Services and containers, so patching it is refused rather than guessed.
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  imagePullSecrets: "name",
  topologySpreadConstraints: "topologyKey",
};
const UNPATCHABLE_LISTS = new Set(["ports"]);

export function loadYaml(file: string): Doc[] {
  return parseAllDocuments(readFileSync(file, "utf8")).flatMap((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    const value: unknown = d.toJS();
    if (value === null || value === undefined) return [];
    if (!isObject(value)) throw new Error(`${file}: a document is not a mapping`);
    return [value];
  });
}

export const docId = (d: Doc) => `${d.kind}/${d.metadata?.namespace ?? ""}/${d.metadata?.name}`;

/** Renders the kustomization in `dir` like `kustomize build dir`, in resource order. */
export function render(dir: string): Doc[] {
  const [k] = loadYaml(path.join(dir, "kustomization.yaml"));
  if (!k) throw new Error(`${dir}: empty kustomization.yaml`);
  for (const key of Object.keys(k)) {
    if (!FIELDS.has(key)) throw new Error(`${dir}: kustomization field "${key}" is not supported by the test renderer`);
  }

  let docs: Doc[] = [];
  for (const entry of (k.resources ?? []) as string[]) {
    const p = path.join(dir, entry);
    docs.push(...(statSync(p).isDirectory() ? render(p) : loadYaml(p)));
  }
  const seen = new Set<string>();
  for (const d of docs) {
    if (seen.has(docId(d))) throw new Error(`${dir}: ${docId(d)} is defined twice`);
    seen.add(docId(d));
  }

  for (const patch of (k.patches ?? []) as Doc[]) {
    if (Object.keys(patch).join() !== "path") throw new Error(`${dir}: only patches given by "path" are supported`);
    for (const p of loadYaml(path.join(dir, patch.path))) {
      const i = docs.findIndex(
        (d) => d.kind === p.kind && d.apiVersion === p.apiVersion && d.metadata?.name === p.metadata?.name,
      );
      if (i < 0) throw new Error(`${dir}: patch ${patch.path} matches no resource`);
      docs[i] = merge(docs[i], p, "") as Doc;
    }
  }

  if (k.namespace !== undefined) {
    docs = docs.map((d) => ({ ...d, metadata: { ...d.metadata, namespace: k.namespace } }));
  }
  for (const image of (k.images ?? []) as Doc[]) docs = docs.map((d) => setImage(d, image) as Doc);
  return docs;
}

function isObject(v: unknown): v is Doc {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function merge(target: unknown, patch: unknown, key: string): unknown {
  if (isObject(target) && isObject(patch)) {
    const out: Doc = { ...target };
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith("$")) throw new Error(`patch directive ${k} is not supported by the test renderer`);
      if (v === null) delete out[k];
      else out[k] = merge(out[k], v, k);
    }
    return out;
  }
  if (Array.isArray(target) && Array.isArray(patch)) {
    if (UNPATCHABLE_LISTS.has(key)) throw new Error(`patching "${key}" lists is not supported by the test renderer`);
    const mergeKey = MERGE_KEYS[key];
    if (mergeKey === undefined) return structuredClone(patch);
    const out: unknown[] = [...target];
    for (const item of patch as Doc[]) {
      const i = out.findIndex((x) => isObject(x) && x[mergeKey] === item[mergeKey]);
      if (i < 0) out.push(structuredClone(item));
      else out[i] = merge(out[i], item, "");
    }
    return out;
  }
  return structuredClone(patch);
}

/** kustomize's `images` transformer: rewrites every `image` of a container whose name matches. */
function setImage(node: unknown, rule: Doc): unknown {
  if (Array.isArray(node)) return node.map((n) => setImage(n, rule));
  if (!isObject(node)) return node;
  const out: Doc = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] = (k === "containers" || k === "initContainers") && Array.isArray(v)
      ? v.map((c: Doc) => (typeof c.image === "string" ? { ...c, image: retag(c.image, rule) } : c))
      : setImage(v, rule);
  }
  return out;
}

function retag(image: string, rule: Doc): string {
  const at = image.indexOf("@");
  const colon = image.lastIndexOf(":");
  const end = at >= 0 ? at : colon > image.lastIndexOf("/") ? colon : image.length;
  const name = image.slice(0, end);
  if (name !== rule.name) return image;
  const suffix = rule.digest ? `@${rule.digest}` : rule.newTag !== undefined ? `:${rule.newTag}` : image.slice(end);
  return `${rule.newName ?? name}${suffix}`;
}
