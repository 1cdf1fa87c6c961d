// The agent link judged from its configured address alone (no network needed).
import assert from "node:assert/strict";
import { test } from "node:test";
import { judgeAgentTransport } from "../../src/doctor/index.js";
import { checkAgentHttpListeners, checkAgentRpcTls, checkGossipEncryption } from "../../src/doctor/transport-checks.js";
import { parseAgentSelf } from "../../src/agent/index.js";

const verify = { verify: true };
const http = (host: string) => ({ scheme: "http" as const, host, port: 8500, pathPrefix: "" });

test("plain HTTP passes only on loopback", () => {
  assert.equal(judgeAgentTransport(http("127.0.0.1"), verify, undefined).verdict, "PASS");
  assert.equal(judgeAgentTransport(http("127.8.9.10"), verify, undefined).verdict, "PASS");
  assert.equal(judgeAgentTransport(http("::1"), verify, undefined).verdict, "PASS");
  assert.equal(judgeAgentTransport(http("localhost"), verify, undefined).verdict, "PASS");
  const off = judgeAgentTransport(http("10.1.2.3"), verify, undefined);
  assert.equal(off.verdict, "FAIL");
  assert.match(off.seen, /10\.1\.2\.3:8500.*clear text/);
  assert.match(off.fix ?? "", /unix:\/\/\/.*https:\/\//);
  assert.equal(judgeAgentTransport(http("0.0.0.0"), verify, undefined).verdict, "FAIL");
  assert.equal(judgeAgentTransport(http("fd00::2"), verify, undefined).verdict, "FAIL");
});

test("a host name counts as loopback only when every address it resolves to is", () => {
  assert.equal(judgeAgentTransport(http("consul.local"), verify, ["127.0.0.1", "::1"]).verdict, "PASS");
  assert.equal(judgeAgentTransport(http("consul.local"), verify, ["127.0.0.1", "192.0.2.9"]).verdict, "FAIL");
  assert.equal(judgeAgentTransport(http("consul.local"), verify, undefined).verdict, "FAIL", "unresolved: assume the network");
  assert.equal(judgeAgentTransport(http("consul.local"), verify, []).verdict, "FAIL");
});

test("HTTPS passes when the agent's certificate is verified, WARNs when not; a unix socket passes", () => {
  const https = { scheme: "https" as const, host: "10.0.0.5", port: 8501, pathPrefix: "" };
  assert.equal(judgeAgentTransport(https, verify, undefined).verdict, "PASS");
  const unverified = judgeAgentTransport(https, { verify: false }, undefined);
  assert.equal(unverified.verdict, "WARN");
  assert.match(unverified.fix ?? "", /-ca-file/);
  assert.equal(judgeAgentTransport({ scheme: "unix", socketPath: "/run/consul.sock" }, verify, undefined).verdict, "PASS");
});

test("agent/self fields: listeners, RPC TLS and gossip (spec §11.5), current and pre-1.12 shapes", () => {
  const good = parseAgentSelf({
    Config: { Version: "1.20.1" },
    DebugConfig: {
      ACLsEnabled: true,
      ACLResolverSettings: { ACLDefaultPolicy: "deny" },
      HTTPAddrs: ["tcp://127.0.0.1:8500", "unix:///run/consul.sock"],
      HTTPSAddrs: ["tcp://0.0.0.0:8501"],
      TLS: { InternalRPC: { VerifyIncoming: true, VerifyOutgoing: true, VerifyServerHostname: true } },
      ConnectCAProvider: "vault",
    },
    Stats: { consul: { acl: "enabled" }, serf_lan: { encrypted: "true" } },
  });
  const ok = { t: "ok" as const, value: good };
  assert.equal(checkAgentHttpListeners(ok).verdict, "PASS");
  assert.equal(checkAgentRpcTls(ok).verdict, "PASS");
  assert.equal(checkGossipEncryption(ok).verdict, "PASS");

  const old = parseAgentSelf({ DebugConfig: { HTTPAddrs: ["tcp://0.0.0.0:8500"], VerifyIncoming: true, VerifyOutgoing: false, VerifyServerHostname: false }, Stats: { serf_lan: { encrypted: "false" } } });
  const bad = { t: "ok" as const, value: old };
  const listeners = checkAgentHttpListeners(bad);
  assert.equal(listeners.verdict, "FAIL");
  assert.match(listeners.seen, /tcp:\/\/0\.0\.0\.0:8500/);
  const rpc = checkAgentRpcTls(bad);
  assert.equal(rpc.verdict, "FAIL");
  assert.match(rpc.seen, /verify_outgoing=false, verify_server_hostname=false/);
  assert.equal(checkGossipEncryption(bad).verdict, "FAIL");

  const denied = { t: "denied" as const, message: "403 Permission denied" };
  for (const c of [checkAgentHttpListeners(denied), checkAgentRpcTls(denied), checkGossipEncryption(denied)]) {
    assert.equal(c.verdict, "WARN");
    assert.match(c.seen, /cannot tell.*agent:read/);
  }
});
