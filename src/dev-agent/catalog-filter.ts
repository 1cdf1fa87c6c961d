// A go-bexpr subset for `?filter=` (spec §1.5): enough for what clients send to list endpoints.
// Grammar: or / and / not / parentheses over matches of the forms
//   Sel == V   Sel != V   V in Sel   V not in Sel   Sel contains V   Sel not contains V
//   Sel is empty   Sel is not empty   Sel matches V   Sel not matches V
// Selectors are dotted paths (`Proxy.DestinationServiceID`, `Meta.env`, `Meta["a.b"]`).

import { HttpError } from "./http-error.js";

type Token =
  | { t: "word"; v: string }
  | { t: "str"; v: string }
  | { t: "op"; v: "==" | "!=" | "(" | ")" | "." | "[" | "]" };

export type FilterExpr =
  | { k: "and" | "or"; l: FilterExpr; r: FilterExpr }
  | { k: "not"; e: FilterExpr }
  | { k: "match"; op: MatchOp; sel: string[]; value: string };

type MatchOp = "==" | "!=" | "in" | "not in" | "contains" | "not contains" | "empty" | "not empty" | "matches" | "not matches";

/** A bad expression; the HTTP layer turns it into 400 `Failed to create filter: …`. */
export class FilterError extends Error {
  override name = "FilterError";
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "=" || c === "!") {
      if (src[i + 1] !== "=") throw new FilterError(`1:${i + 1}: unexpected character ${JSON.stringify(c)}`);
      out.push({ t: "op", v: c === "=" ? "==" : "!=" });
      i += 2;
      continue;
    }
    if (c === "(" || c === ")" || c === "." || c === "[" || c === "]") {
      out.push({ t: "op", v: c });
      i++;
      continue;
    }
    if (c === '"' || c === "`") {
      let j = i + 1;
      let v = "";
      while (j < src.length && src[j] !== c) {
        if (c === '"' && src[j] === "\\" && j + 1 < src.length) {
          const n = src[j + 1]!;
          v += n === "n" ? "\n" : n === "t" ? "\t" : n;
          j += 2;
          continue;
        }
        v += src[j];
        j++;
      }
      if (j >= src.length) throw new FilterError(`1:${i + 1}: unterminated string`);
      out.push({ t: "str", v });
      i = j + 1;
      continue;
    }
    const m = /^[A-Za-z0-9_\-+:/*@]+/.exec(src.slice(i));
    if (!m) throw new FilterError(`1:${i + 1}: unexpected character ${JSON.stringify(c)}`);
    out.push({ t: "word", v: m[0] });
    i += m[0].length;
  }
  return out;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Token[]) {}

  parse(): FilterExpr {
    const e = this.or();
    if (this.i < this.toks.length) throw new FilterError(`unexpected ${JSON.stringify(this.toks[this.i]!.v)}`);
    return e;
  }
  private peek(o = 0): Token | undefined {
    return this.toks[this.i + o];
  }
  private isWord(w: string, o = 0): boolean {
    const t = this.peek(o);
    return t?.t === "word" && t.v === w;
  }
  private isOp(v: string, o = 0): boolean {
    const t = this.peek(o);
    return t?.t === "op" && t.v === v;
  }
  private or(): FilterExpr {
    let l = this.and();
    while (this.isWord("or")) {
      this.i++;
      l = { k: "or", l, r: this.and() };
    }
    return l;
  }
  private and(): FilterExpr {
    let l = this.not();
    while (this.isWord("and")) {
      this.i++;
      l = { k: "and", l, r: this.not() };
    }
    return l;
  }
  private not(): FilterExpr {
    if (this.isWord("not")) {
      this.i++;
      return { k: "not", e: this.not() };
    }
    if (this.isOp("(")) {
      this.i++;
      const e = this.or();
      if (!this.isOp(")")) throw new FilterError("missing closing parenthesis");
      this.i++;
      return e;
    }
    return this.match();
  }
  private value(): string {
    const t = this.peek();
    if (!t || t.t === "op") throw new FilterError("expected a value");
    this.i++;
    return t.v;
  }
  private selector(): string[] {
    const t = this.peek();
    if (!t || t.t !== "word" || !/^[A-Za-z_][A-Za-z0-9_\-]*$/.test(t.v)) throw new FilterError("expected a selector");
    this.i++;
    const sel = [t.v];
    for (;;) {
      if (this.isOp(".")) {
        this.i++;
        const n = this.peek();
        if (!n || n.t === "op") throw new FilterError("expected a selector field after '.'");
        this.i++;
        sel.push(n.v);
      } else if (this.isOp("[")) {
        this.i++;
        const n = this.peek();
        if (!n || n.t !== "str") throw new FilterError("expected a quoted index");
        this.i++;
        if (!this.isOp("]")) throw new FilterError("missing ']'");
        this.i++;
        sel.push(n.v);
      } else return sel;
    }
  }
  private match(): FilterExpr {
    // `V in Sel` / `V not in Sel` start with a value.
    const first = this.peek();
    if (first && first.t !== "op" && (this.isWord("in", 1) || (this.isWord("not", 1) && this.isWord("in", 2)))) {
      this.i++;
      let op: MatchOp = "in";
      if (this.isWord("not")) {
        this.i++;
        op = "not in";
      }
      this.i++; // "in"
      return { k: "match", op, sel: this.selector(), value: first.v };
    }
    const sel = this.selector();
    if (this.isOp("==") || this.isOp("!=")) {
      const op = this.peek()!.v as "==" | "!=";
      this.i++;
      return { k: "match", op, sel, value: this.value() };
    }
    if (this.isWord("is")) {
      this.i++;
      let op: MatchOp = "empty";
      if (this.isWord("not")) {
        this.i++;
        op = "not empty";
      }
      if (!this.isWord("empty")) throw new FilterError("expected 'empty'");
      this.i++;
      return { k: "match", op, sel, value: "" };
    }
    let negate = false;
    if (this.isWord("not")) {
      this.i++;
      negate = true;
    }
    if (this.isWord("contains") || this.isWord("matches")) {
      const w = this.peek()!.v as "contains" | "matches";
      this.i++;
      const op = (negate ? `not ${w}` : w) as MatchOp;
      const value = this.value();
      if (w === "matches") {
        try {
          new RegExp(value);
        } catch (err) {
          throw new FilterError(`invalid regular expression: ${(err as Error).message}`);
        }
      }
      return { k: "match", op, sel, value };
    }
    throw new FilterError(`expected an operator after selector ${JSON.stringify(sel.join("."))}`);
  }
}

/**
 * Parses a filter expression. `fields` (when given) lists the valid top-level selectors, so that
 * `Foo == 1` is refused as bexpr refuses it. Throws FilterError.
 */
export function parseFilter(src: string, fields?: readonly string[]): FilterExpr {
  const expr = new Parser(tokenize(src)).parse();
  if (fields) checkSelectors(expr, fields);
  return expr;
}

function checkSelectors(e: FilterExpr, fields: readonly string[]): void {
  switch (e.k) {
    case "and":
    case "or":
      checkSelectors(e.l, fields);
      checkSelectors(e.r, fields);
      return;
    case "not":
      return checkSelectors(e.e, fields);
    case "match":
      if (!fields.includes(e.sel[0]!)) throw new FilterError(`Selector ${JSON.stringify(e.sel.join("."))} is not valid`);
  }
}

function resolve(obj: unknown, sel: readonly string[]): unknown {
  let cur = obj;
  for (const part of sel) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    const rec = cur as Record<string, unknown>;
    if (part in rec) cur = rec[part];
    else {
      const key = Object.keys(rec).find((k) => k.toLowerCase() === part.toLowerCase());
      cur = key === undefined ? undefined : rec[key];
    }
  }
  return cur;
}

function equals(actual: unknown, value: string): boolean {
  if (typeof actual === "string") return actual === value;
  if (typeof actual === "number") return Number(value) === actual;
  if (typeof actual === "boolean") return (value === "true") === actual && (value === "true" || value === "false");
  if (actual === undefined || actual === null) return value === "";
  return false;
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.keys(v).length === 0;
  return false;
}

function contains(container: unknown, value: string): boolean {
  if (Array.isArray(container)) return container.some((x) => equals(x, value));
  if (typeof container === "string") return container.includes(value);
  if (container && typeof container === "object") return Object.hasOwn(container, value);
  return false;
}

/** Evaluates a parsed filter against one rendered (Consul JSON) object. */
export function evalFilter(e: FilterExpr, obj: unknown): boolean {
  switch (e.k) {
    case "and":
      return evalFilter(e.l, obj) && evalFilter(e.r, obj);
    case "or":
      return evalFilter(e.l, obj) || evalFilter(e.r, obj);
    case "not":
      return !evalFilter(e.e, obj);
    case "match": {
      const v = resolve(obj, e.sel);
      switch (e.op) {
        case "==":
          return equals(v, e.value);
        case "!=":
          return !equals(v, e.value);
        case "in":
        case "contains":
          return contains(v, e.value);
        case "not in":
        case "not contains":
          return !contains(v, e.value);
        case "empty":
          return isEmpty(v);
        case "not empty":
          return !isEmpty(v);
        case "matches":
          return typeof v === "string" && new RegExp(e.value).test(v);
        case "not matches":
          return !(typeof v === "string" && new RegExp(e.value).test(v));
      }
    }
  }
}

/**
 * Applies `?filter=` to rendered items; returns them unchanged when there is no filter.
 * Throws 400 `Failed to create filter: …` for a bad expression.
 */
export function applyFilter<T>(query: URLSearchParams, items: T[], fields?: readonly string[]): T[] {
  const src = query.get("filter");
  if (!src) return items;
  let expr: FilterExpr;
  try {
    expr = parseFilter(src, fields);
  } catch (err) {
    if (err instanceof FilterError) throw new HttpError(400, `Failed to create filter: ${err.message}`);
    throw err;
  }
  return items.filter((x) => evalFilter(expr, x));
}
