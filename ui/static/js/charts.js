// Small SVG charts for the overview: stacked bars and lines over time buckets, one or two
// value axes, a title per bucket for exact values on hover. No library: ~100 lines suffice.

const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 200, PAD = { left: 66, right: 52, top: 12, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= value);
}

// series: [{name, values, color, kind: "bar"|"line", axis: "left"|"right"}]; bars stack.
export function timeChart({ title, times, series, format = String, rightFormat = String, rightMax }) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  const n = times.length;
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, n);
  const bars = series.filter((s) => s.kind === "bar");
  const stackTotals = times.map((_, i) => bars.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const leftLines = series.filter((s) => s.kind === "line" && s.axis !== "right").flatMap((s) => s.values);
  const leftMax = niceMax(Math.max(0, ...stackTotals, ...leftLines.filter((v) => v !== null)));
  const rMax = rightMax || niceMax(Math.max(0, ...series.filter((s) => s.axis === "right").flatMap((s) => s.values).filter((v) => v !== null)));
  const y = (v, axis) => PAD.top + plotH - (v / (axis === "right" ? rMax : leftMax)) * plotH;
  for (let k = 0; k <= 4; k++) {
    const v = (leftMax * k) / 4, yy = y(v, "left");
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy, class: "grid" }));
    root.append(svg("text", { x: PAD.left - 6, y: yy + 4, "text-anchor": "end", class: "axis" }, format(v)));
    if (series.some((s) => s.axis === "right")) {
      root.append(svg("text", { x: W - PAD.right + 6, y: yy + 4, class: "axis" }, rightFormat((rMax * k) / 4)));
    }
  }
  const step = Math.max(1, Math.ceil(n / 8));
  times.forEach((t, i) => {
    if (i % step) return;
    const d = new Date(t);
    const label = n > 30 || (times.length > 1 && times[1] - times[0] >= 86400e3 / 2)
      ? `${d.getMonth() + 1}/${d.getDate()} ${String(d.getHours()).padStart(2, "0")}h` : `${String(d.getHours()).padStart(2, "0")}:00`;
    root.append(svg("text", { x: PAD.left + slot * (i + 0.5), y: H - 8, "text-anchor": "middle", class: "axis" }, label));
  });
  times.forEach((t, i) => {
    let base = 0;
    const g = svg("g");
    const lines = [new Date(t).toLocaleString()];
    for (const s of bars) {
      const v = s.values[i] || 0;
      if (v > 0) {
        g.append(svg("rect", { x: PAD.left + slot * i + slot * 0.12, width: slot * 0.76, y: y(base + v, "left"),
          height: y(base, "left") - y(base + v, "left"), fill: s.color }));
      }
      base += v;
      lines.push(`${s.name}: ${format(v)}`);
    }
    for (const s of series.filter((x) => x.kind === "line")) {
      lines.push(`${s.name}: ${s.values[i] === null ? "–" : (s.axis === "right" ? rightFormat : format)(s.values[i])}`);
    }
    g.append(svg("rect", { x: PAD.left + slot * i, width: slot, y: PAD.top, height: plotH, fill: "transparent" }));
    g.append(svg("title", {}, lines.join("\n")));
    root.append(g);
  });
  for (const s of series.filter((x) => x.kind === "line")) {
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += `${d && s.values[i - 1] !== null && s.values[i - 1] !== undefined ? "L" : "M"}${PAD.left + slot * (i + 0.5)},${y(v, s.axis)}`;
    });
    root.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2 }));
    s.values.forEach((v, i) => {  // a dot per value: a lone bucket has no line to draw
      if (v !== null && v !== undefined) root.append(svg("circle", { cx: PAD.left + slot * (i + 0.5), cy: y(v, s.axis), r: 2.5, fill: s.color }));
    });
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.className = "swatch";
    swatch.style.background = s.color;
    item.append(swatch, s.name);
    legend.append(item);
  }
  const figure = document.createElement("figure");
  figure.className = "chart-box";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, root, legend);
  return figure;
}
