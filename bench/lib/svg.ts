// Hand-written SVG charts: grouped bars and lines, enough for the benchmark report without a
// browser or a charting dependency. Log scales keep p50 and max readable on one chart.

export interface Series {
  name: string;
  values: (number | null)[];
  color?: string;
}

export interface BarChart {
  title: string;
  categories: string[];
  series: Series[];
  unit: string;
  log?: boolean;
}

export interface LineSeries {
  name: string;
  points: [number, number][];
  color?: string;
}

export interface LineChart {
  title: string;
  xLabel: string;
  /** How a point's x reads in its tooltip (default "t"). */
  xName?: string;
  unit: string;
  series: LineSeries[];
}

const W = 720;
const H = 360;
const M = { left: 70, right: 20, top: 44, bottom: 84 };
const BASE = H - M.bottom;
const PLOT_W = W - M.left - M.right;
const PLOT_H = H - M.top - M.bottom;
const COLORS = ["#9aa0a6", "#1a73e8", "#5f6368", "#e8710a", "#188038", "#a142f4"];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/** One SVG element; numbers are rounded to a tenth of a pixel to keep files small. */
function el(name: string, attrs: Record<string, string | number>, content?: string): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${typeof v === "number" ? num(v) : esc(v)}"`)
    .join("");
  return content === undefined ? `<${name}${a}/>` : `<${name}${a}>${content}</${name}>`;
}

const text = (x: number, y: number, s: string, attrs: Record<string, string | number> = {}) =>
  el("text", { x, y, "font-size": 11, fill: "#555", ...attrs }, esc(s));

const colorOf = (series: { color?: string }, i: number) => series.color ?? COLORS[i % COLORS.length]!;

export function formatNumber(x: number): string {
  const a = Math.abs(x);
  if (a >= 1e6) return `${+(x / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(x / 1e3).toPrecision(3)}k`;
  if (a >= 100) return String(Math.round(x));
  return String(+x.toPrecision(3));
}

interface Scale {
  y: (v: number) => number;
  ticks: number[];
}

function scale(values: number[], log: boolean): Scale {
  const positive = values.filter((v) => v > 0);
  if (log && positive.length > 0) {
    const lo = Math.floor(Math.log10(Math.min(...positive)));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...positive))));
    const y = (v: number) => BASE - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * PLOT_H;
    return { y, ticks: Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i)) };
  }
  const max = Math.max(1e-9, ...values);
  const step = niceStep(max / 5);
  const top = Math.ceil(max / step) * step;
  const y = (v: number) => BASE - (v / top) * PLOT_H;
  return { y, ticks: Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step) };
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function legend(keys: { name: string; color: string }[]): string[] {
  // Keys flow left to right and wrap onto a second row when the first is full.
  let x = M.left;
  let y = BASE + 44;
  return keys.map(({ name, color }) => {
    const width = 30 + name.length * 6.5;
    if (x > M.left && x + width > W - M.right) {
      x = M.left;
      y += 18;
    }
    const key = el("rect", { x, y, width: 12, height: 12, fill: color }) + text(x + 17, y + 10, name, { "font-size": 12, fill: "#333" });
    x += width;
    return key;
  });
}

function frame(title: string, unit: string, s: Scale, inner: string[], keys: { name: string; color: string }[]): string {
  const grid = s.ticks.map(
    (t) =>
      el("line", { x1: M.left, y1: s.y(t), x2: W - M.right, y2: s.y(t), stroke: "#e0e0e0" }) +
      text(M.left - 6, s.y(t), formatNumber(t), { "text-anchor": "end", "dominant-baseline": "middle" }),
  );
  const body = [
    el("rect", { width: W, height: H, fill: "#fff" }),
    text(W / 2, 22, title, { "text-anchor": "middle", "font-size": 15, "font-weight": 600, fill: "#222" }),
    text(14, M.top - 12, unit),
    ...grid,
    ...inner,
    el("line", { x1: M.left, y1: BASE, x2: W - M.right, y2: BASE, stroke: "#888" }),
    ...legend(keys),
  ];
  const attrs = {
    xmlns: "http://www.w3.org/2000/svg",
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    "font-family": "system-ui, -apple-system, Segoe UI, sans-serif",
  };
  return `${el("svg", attrs, `\n${body.join("\n")}\n`)}\n`;
}

export function barChart(c: BarChart): string {
  const s = scale(c.series.flatMap((x) => x.values.filter((v): v is number => v !== null)), c.log ?? false);
  const slot = PLOT_W / Math.max(1, c.categories.length);
  const bar = Math.min(48, (slot * 0.8) / Math.max(1, c.series.length));
  const inner = c.categories.flatMap((cat, ci) => {
    const x0 = M.left + ci * slot + (slot - bar * c.series.length) / 2;
    const bars = c.series.map((ser, si) => {
      const v = ser.values[ci];
      if (v === null || v === undefined) return "";
      const top = Math.min(BASE, s.y(v));
      const x = x0 + si * bar;
      const tip = el("title", {}, esc(`${ser.name} ${cat}: ${v} ${c.unit}`));
      return (
        el("rect", { x, y: top, width: bar - 2, height: BASE - top, fill: colorOf(ser, si) }, tip) +
        text(x + bar / 2 - 1, top - 3, formatNumber(v), { "text-anchor": "middle", "font-size": 10, fill: "#333" })
      );
    });
    return [text(M.left + ci * slot + slot / 2, BASE + 16, cat, { "text-anchor": "middle", "font-size": 12, fill: "#333" }), ...bars];
  });
  return frame(c.title, c.unit, s, inner, c.series.map((x, i) => ({ name: x.name, color: colorOf(x, i) })));
}

export function lineChart(c: LineChart): string {
  const s = scale(c.series.flatMap((x) => x.points.map((p) => p[1])), false);
  const xMax = Math.max(1e-9, ...c.series.flatMap((x) => x.points.map((p) => p[0])));
  const x = (v: number) => M.left + (v / xMax) * PLOT_W;
  const lines = c.series.map((ser, i) => {
    const color = colorOf(ser, i);
    const points = ser.points.map(([px, py]) => `${num(x(px))},${num(s.y(py))}`).join(" ");
    const dots = ser.points.map(([px, py]) =>
      el("circle", { cx: x(px), cy: s.y(py), r: 2.5, fill: color }, el("title", {}, esc(`${ser.name} ${c.xName ?? "t"}=${px}: ${py} ${c.unit}`))),
    );
    return el("polyline", { points, fill: "none", stroke: color, "stroke-width": 2 }) + dots.join("");
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => text(x(f * xMax), BASE + 16, formatNumber(f * xMax), { "text-anchor": "middle" }));
  const keys = c.series.map((x, i) => ({ name: x.name, color: colorOf(x, i) }));
  return frame(c.title, c.unit, s, [...lines, ...ticks, text(W / 2, BASE + 34, c.xLabel, { "text-anchor": "middle" })], keys);
}
