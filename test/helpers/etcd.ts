// A real etcd cluster (Debian etcd-server) on loopback, started from the certificates node-join
// installed under each control-plane root, with client and peer certificate authentication on.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, requireCommand } from "./cfssl.js";

const execFileAsync = promisify(execFile);

export interface EtcdMember {
  name: string;
  ip: string;
  root: string;
  clientUrl: string;
  peerUrl: string;
  logFile: string;
}

export interface EtcdCluster {
  members: EtcdMember[];
  endpoints: string;
  stop(): Promise<void>;
}

const pki = (root: string, f: string) => join(root, "etc/kubernetes/pki", f);

export async function startEtcdCluster(
  nodes: { name: string; ip: string; root: string }[],
): Promise<EtcdCluster> {
  requireCommand("etcd", "etcd-server");
  requireCommand("etcdctl", "etcd-client");
  const dir = mkdtempSync(join(tmpdir(), "nj-etcd-"));
  const members: EtcdMember[] = [];
  for (const n of nodes) {
    const [cp, pp] = [await freePort(), await freePort()];
    members.push({
      ...n,
      clientUrl: `https://${n.ip}:${cp}`,
      peerUrl: `https://${n.ip}:${pp}`,
      logFile: join(dir, `${n.name}.log`),
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const children: ChildProcess[] = members.map((m) =>
    spawn(
      "etcd",
      [
        `--name=${m.name}`,
        `--data-dir=${join(dir, m.name)}`,
        `--listen-client-urls=${m.clientUrl}`,
        `--advertise-client-urls=${m.clientUrl}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        "--initial-cluster-token=node-join-test",
        "--client-cert-auth",
        `--trusted-ca-file=${pki(m.root, "etcd/ca.crt")}`,
        `--cert-file=${pki(m.root, "etcd/server.crt")}`,
        `--key-file=${pki(m.root, "etcd/server.key")}`,
        "--peer-client-cert-auth",
        `--peer-trusted-ca-file=${pki(m.root, "etcd/ca.crt")}`,
        `--peer-cert-file=${pki(m.root, "etcd/peer.crt")}`,
        `--peer-key-file=${pki(m.root, "etcd/peer.key")}`,
        "--listen-metrics-urls=",
        "--logger=zap",
      ],
      { stdio: ["ignore", openSync(m.logFile, "a"), openSync(m.logFile, "a")] },
    ),
  );
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl).join(","),
    stop: async () => {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              c.once("exit", () => resolve());
              c.kill("SIGTERM");
            }),
        ),
      );
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const dead = children.findIndex((c) => c.exitCode !== null);
    if (dead >= 0) {
      await cluster.stop();
      throw new Error(
        `etcd ${members[dead]!.name} exited: ${readFileSync(members[dead]!.logFile, "utf8").slice(-800)}`,
      );
    }
    const r = await etcdctl(members[0]!.root, "etcd/healthcheck-client", cluster.endpoints, [
      "endpoint",
      "health",
    ]).catch((e: Error) => ({ code: 1, out: e.message }));
    if (r.code === 0) return cluster;
    if (Date.now() > deadline) {
      await cluster.stop();
      throw new Error(`etcd cluster did not become healthy: ${r.out}`);
    }
    await new Promise((res) => setTimeout(res, 300));
  }
}

/**
 * etcdctl (v3 API) with a client certificate from a node-join root, e.g. "etcd/healthcheck-client".
 */
/** Every member of the cluster answers healthy to `root`'s etcd healthcheck-client certificate. */
export async function assertEtcdHealthy(cluster: EtcdCluster, root: string): Promise<void> {
  const health = await etcdctl(root, "etcd/healthcheck-client", cluster.endpoints, [
    "endpoint",
    "health",
  ]);
  assert.equal(health.code, 0, health.out);
  assert.equal((health.out.match(/is healthy/g) ?? []).length, cluster.members.length, health.out);
}

/**
 * What a cluster's etcd must do for its control planes: a value put with one node's
 * apiserver-etcd-client certificate is read with another's; `root`'s apiserver-kubelet-client
 * certificate (the kubernetes CA's, not the etcd CA's) is refused. Returns that refusal.
 */
export async function assertEtcdClients(
  cluster: EtcdCluster,
  [root, writer, reader]: [string, string, string],
  value: string,
): Promise<{ code: number; out: string }> {
  const put = await etcdctl(writer, "apiserver-etcd-client", cluster.endpoints, [
    "put",
    "/registry/node-join",
    value,
  ]);
  assert.equal(put.code, 0, put.out);
  const get = await etcdctl(reader, "apiserver-etcd-client", cluster.endpoints, [
    "get",
    "/registry/node-join",
    "--print-value-only",
  ]);
  assert.equal(get.out.trim(), value);
  const wrong = await etcdctl(root, "apiserver-kubelet-client", cluster.endpoints, [
    "get",
    "/registry/node-join",
  ]);
  assert.notEqual(wrong.code, 0);
  return wrong;
}

export async function etcdctl(
  root: string,
  cert: string,
  endpoints: string,
  args: string[],
  caFile = pki(root, "etcd/ca.crt"),
): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(
      "etcdctl",
      [
        `--endpoints=${endpoints}`,
        `--cacert=${caFile}`,
        `--cert=${pki(root, `${cert}.crt`)}`,
        `--key=${pki(root, `${cert}.key`)}`,
        "--dial-timeout=3s",
        "--command-timeout=5s",
        ...args,
      ],
      { env: { ...process.env, ETCDCTL_API: "3" } },
    );
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      out: `${e.stdout ?? ""}${e.stderr ?? ""}` || e.message,
    };
  }
}
