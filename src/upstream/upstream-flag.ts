// Consul CLI's static `-upstream <name>[.service|.query]:<[host:]port>` flag (spec §9.1,
// command/connect/proxy/flag_upstreams.go).
import type { Upstream } from "../agent/index.js";
import { ConfigError, parseHostPort } from "../net/index.js";

const PORT_RE = /^\d{1,5}$/;

/**
 * Parses one `-upstream` value into an Upstream: "db:9191", "db.service:127.0.0.1:9191",
 * "q.query:9292", "db:[::1]:9191". The bind host defaults to 127.0.0.1. Throws ConfigError (field
 * "upstream") with Consul's texts for a missing colon or a bad type suffix.
 */
export function parseUpstreamFlag(value: string): Upstream {
  const colon = value.indexOf(":");
  if (colon < 0) throw new ConfigError("upstream", `Upstream value should be name:addr in ${JSON.stringify(value)}`);
  let name = value.slice(0, colon);
  const rest = value.slice(colon + 1);

  let destinationType: Upstream["destinationType"] = "service";
  const dot = name.indexOf(".");
  if (dot >= 0) {
    const type = name.slice(dot + 1);
    name = name.slice(0, dot);
    if (type === "query") destinationType = "prepared_query";
    else if (type !== "" && type !== "service") {
      throw new ConfigError("upstream", `Upstream type must be blank, 'service', or 'query'. Got: ${JSON.stringify(type)}`);
    }
  }
  if (name === "") throw new ConfigError("upstream", `upstream destination name cannot be empty in ${JSON.stringify(value)}`);

  let host = "127.0.0.1";
  let port: number;
  if (rest.includes(":")) {
    const hp = parseHostPort(rest, "upstream");
    host = hp.host;
    port = hp.port;
  } else {
    if (!PORT_RE.test(rest)) throw new ConfigError("upstream", `${JSON.stringify(value)} has no numeric port; use name:port or name:host:port`);
    port = Number(rest);
  }
  if (port < 1 || port > 65535) throw new ConfigError("upstream", `${JSON.stringify(value)} needs a port between 1 and 65535`);

  return {
    destinationType,
    destinationName: name,
    destinationNamespace: "default",
    datacenter: "",
    localBindAddress: host,
    localBindPort: port,
    localBindSocketPath: "",
    localBindSocketMode: "",
    config: {},
  };
}
