import { HttpError } from "./http-error.js";
import { grants, intentionLevel, type RuleSet } from "./acl-rules.js";
import type { AclAuthz, AclLevel, AclResource } from "./router.js";

export const ANONYMOUS_ACCESSOR_ID = "00000000-0000-0000-0000-000000000002";

/** With ACLs disabled every check passes (spec §1.2). */
export const ALLOW_ALL: AclAuthz = {
  accessorId: "",
  isManagement: true,
  allowed: () => true,
  require: () => undefined,
};

/** A resolved token: its merged rules evaluated per spec §11.4, falling through to the default policy. */
export class TokenAuthz implements AclAuthz {
  constructor(
    readonly accessorId: string,
    readonly isManagement: boolean,
    private readonly rules: RuleSet,
    private readonly defaultAllow: boolean,
  ) {}

  allowed(resource: AclResource, level: AclLevel, name = ""): boolean {
    const r = this.rules;
    switch (resource) {
      case "acl": {
        // spec §11.1: acl:* needs an explicit grant even under default allow
        const s = r.scalar("acl");
        return s !== undefined && grants(s, level);
      }
      case "operator":
        return this.decide(r.scalar("operator"), level);
      case "mesh":
        return this.decide(r.scalar("mesh") ?? r.scalar("operator"), level);
      case "intentions":
        return this.intentions(level, name);
      default: {
        const m = r.lookup(resource, name);
        return this.decide(m?.policy, level);
      }
    }
  }

  require(resource: AclResource, level: AclLevel, name?: string): void {
    if (!this.allowed(resource, level, name)) throw new HttpError(403, permissionDenied(this.accessorId, resource, level, name));
  }

  private decide(have: ReturnType<RuleSet["scalar"]>, level: AclLevel): boolean {
    return have === undefined ? this.defaultAllow : grants(have, level);
  }

  private intentions(level: AclLevel, name: string): boolean {
    if (name === "*") {
      // spec §11.4 step 5: read if any rule allows it, write only if all of them do
      const levels = this.rules.intentionLevels();
      if (level === "read") return levels.some((l) => grants(l, "read")) || (levels.length === 0 && this.defaultAllow);
      const m = this.rules.lookup("service", "*");
      return levels.every((l) => grants(l, "write")) && this.decide(m && intentionLevel(m), "write");
    }
    const m = this.rules.lookup("service", name);
    return this.decide(m && intentionLevel(m), level);
  }
}

/** Consul's PermissionDeniedError text (acl/errors.go), anonymous and named forms (spec §11.1). */
export function permissionDenied(accessorId: string, resource: string, level: string, name?: string): string {
  const who = accessorId === ANONYMOUS_ACCESSOR_ID ? "anonymous token" : accessorId === "" ? "provided token" : `token with AccessorID '${accessorId}'`;
  let text = `Permission denied: ${who} lacks permission '${resource}:${level}'`;
  if (name) text += ` on ${JSON.stringify(name)}`;
  if (accessorId === ANONYMOUS_ACCESSOR_ID) {
    text += ". The anonymous token is used implicitly when a request does not specify a token.";
  }
  return text;
}
