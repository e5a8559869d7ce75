// Typings for cluster-key-slot (ioredis' own slot function, a dependency of ours too): the Redis
// Cluster hash slot of a key, hash tags honoured.
declare module "cluster-key-slot" {
  export default function calculateSlot(key: string | Buffer): number;
}
