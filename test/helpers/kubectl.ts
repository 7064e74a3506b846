// Reads kubeconfigs with kubectl, independently of the agent's own writer.
import { execFileSync } from "node:child_process";

/**
 * What kubectl resolves from a kubeconfig: `kubectl config view --raw --minify --flatten -o json`
 * (the current context's cluster and user, the credential files it names read in).
 */
export function kubectlView<T>(kubeconfig: string): T {
  const args = ["--kubeconfig", kubeconfig, "config", "view", "--raw", "--minify", "--flatten"];
  return JSON.parse(execFileSync("kubectl", [...args, "-o", "json"]).toString()) as T;
}
