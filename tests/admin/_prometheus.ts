/**
 * A small parser of the Prometheus text exposition format (0.0.4), strict
 * enough to catch what a scraper would reject: every sample's family has
 * a `# TYPE` before it, names and labels are well formed, label values
 * are properly escaped, values are numbers, and no series repeats.
 *
 * @module
 */

/** One parsed metric family. */
export interface MetricFamily {
  /** `counter`, `gauge`, `histogram`, `summary` or `untyped`. */
  type: string;
  /** The `# HELP` text. */
  help: string;
  /** Its samples. */
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * Parses exposition text into families by name.
 *
 * @throws {SyntaxError} naming the line, at the first violation.
 */
export function parsePrometheus(text: string): Map<string, MetricFamily> {
  if (!text.endsWith("\n")) {
    throw new SyntaxError("The text must end with a newline");
  }
  const families = new Map<string, MetricFamily>();
  const series = new Set<string>();
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line)})`;
    if (line === "") return;
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (match === null) return; // a plain comment
      const [, keyword, name, rest] = match;
      if (!NAME.test(name)) throw new SyntaxError(`${where}: bad metric name`);
      const family = families.get(name) ??
        { type: "untyped", help: "", samples: [] };
      if (keyword === "TYPE") {
        if (!TYPES.has(rest)) throw new SyntaxError(`${where}: unknown type`);
        if (family.samples.length > 0) {
          throw new SyntaxError(`${where}: TYPE after samples`);
        }
        family.type = rest;
      } else {
        family.help = rest;
      }
      families.set(name, family);
      return;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?[0-9]+)?$/
      .exec(line);
    if (match === null) throw new SyntaxError(`${where}: not a sample`);
    const [, name, , labelText, valueText] = match;
    const family = families.get(name);
    if (family === undefined) {
      throw new SyntaxError(`${where}: sample of a family with no TYPE`);
    }
    const labels = parseLabels(labelText ?? "", where);
    const value = parseValue(valueText, where);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new SyntaxError(`${where}: repeated series`);
    series.add(key);
    family.samples.push({ name, labels, value });
  });
  return families;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  for (let i = 0; rest !== "" && i < 1000; i++) {
    const match = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
    if (match === null) throw new SyntaxError(`${where}: bad labels`);
    const [whole, name, raw] = match;
    if (!LABEL.test(name) || name.startsWith("__")) {
      throw new SyntaxError(`${where}: bad label name ${name}`);
    }
    if (Object.hasOwn(labels, name)) {
      throw new SyntaxError(`${where}: label ${name} twice`);
    }
    labels[name] = raw.replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
    rest = rest.slice(whole.length);
  }
  return labels;
}

function parseValue(text: string, where: string): number {
  if (text === "NaN") return NaN;
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (!/^-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$/i.test(text)) {
    throw new SyntaxError(`${where}: bad value ${text}`);
  }
  return Number(text);
}
