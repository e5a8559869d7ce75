// Validates rendered manifests against the Kubernetes OpenAPI schemas, offline: the
// kubernetes-models package ships them precompiled (v4.x: Kubernetes 1.33; v5 needs Node 22).
// A kind missing from MODELS is an error, so every document is checked against something.
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { Doc } from "./kustomize.ts";

type ModelClass = { apiVersion: string; kind: string; new (data: never): { validate(): void } };

const MODELS = new Map<string, ModelClass>(
  [ConfigMap, Secret, Service, Deployment, Job, HorizontalPodAutoscaler, PodDisruptionBudget, Ingress, NetworkPolicy].map((m: ModelClass) => [`${m.apiVersion}/${m.kind}`, m]),
);

// The OpenAPI schema types names as plain strings; the API server also wants DNS labels.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Throws with the schema's complaint when `doc` is not a valid object of its kind. */
export function validateManifest(doc: Doc): void {
  const Model = MODELS.get(`${doc.apiVersion}/${doc.kind}`);
  if (!Model) throw new Error(`no schema for apiVersion ${doc.apiVersion} kind ${doc.kind}`);
  new Model(doc as never).validate();
  const name: unknown = doc.metadata?.name;
  if (typeof name !== "string" || !DNS_LABEL.test(name)) throw new Error(`metadata.name ${JSON.stringify(name)} is not a DNS label`);
}
