import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIntentionMatch } from "../../src/agent/index.js";
import { checkIntentions } from "../../src/doctor/acl-checks.js";

const list = parseIntentionMatch(
  {
    api: [
      { SourceName: "web", DestinationName: "api", Permissions: [{ Action: "allow", HTTP: { PathPrefix: "/public" } }], Precedence: 9 },
      { SourceName: "db", DestinationName: "api", Action: "allow", Precedence: 9 },
    ],
  },
  "api",
);

test("an L7 intention is a deny for a layer-4 proxy and enforced per request when the protocol is http", () => {
  const tcp = checkIntentions({ t: "ok", value: list }, "api", "tcp");
  assert.match(tcp.seen, /allow db; deny web \(L7, denied: protocol is tcp, set http to enforce it\)/);
  const http = checkIntentions({ t: "ok", value: list }, "api", "http");
  assert.match(http.seen, /allow web \(L7, per request\), db; deny none/);
  assert.equal(http.verdict, "PASS");
});
