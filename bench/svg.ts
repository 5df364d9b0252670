// A latency CDF chart as a standalone SVG (no dependency): one line per series, delay on a
// logarithmic x axis in microseconds, cumulative fraction on the y axis.

export interface CdfSeries {
  label: string;
  /** Ascending delays in microseconds. */
  values: number[];
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Renders `series` as CDFs; returns the SVG document text. */
export function cdfChart(title: string, series: CdfSeries[], width = 760, height = 420): string {
  const m = { left: 60, right: 20, top: 40, bottom: 50 };
  const legendH = 16 * series.length;
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const all = series.flatMap((s) => s.values).filter((v) => v > 0 && Number.isFinite(v));
  const lo = all.length ? Math.pow(10, Math.floor(Math.log10(Math.min(...all)))) : 1;
  const hi = all.length ? Math.pow(10, Math.ceil(Math.log10(Math.max(...all)))) : 10;
  const decades = Math.max(1, Math.round(Math.log10(hi / lo)));
  const x = (v: number): number => m.left + (Math.log10(Math.max(v, lo) / lo) / decades) * plotW;
  const y = (f: number): number => m.top + (1 - f) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + legendH}" viewBox="0 0 ${width} ${height + legendH}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // Grid: decades (and 2x, 5x) on x, tenths on y.
  for (let d = 0; d <= decades; d++) {
    for (const mult of [1, 2, 5]) {
      const v = lo * Math.pow(10, d) * mult;
      if (v > hi) continue;
      const gx = x(v).toFixed(1);
      out.push(`<line x1="${gx}" y1="${m.top}" x2="${gx}" y2="${m.top + plotH}" stroke="${mult === 1 ? '#bbb' : '#eee'}"/>`);
      if (mult === 1) {
        const label = v >= 1000 ? `${v / 1000} ms` : `${v} µs`;
        out.push(`<text x="${gx}" y="${m.top + plotH + 16}" text-anchor="${d === decades ? "end" : "middle"}">${label}</text>`);
      }
    }
  }
  for (let i = 0; i <= 10; i++) {
    const gy = y(i / 10).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${gy}" x2="${m.left + plotW}" y2="${gy}" stroke="${i % 5 === 0 ? '#bbb' : '#eee'}"/>`);
    if (i % 2 === 0) out.push(`<text x="${m.left - 6}" y="${gy}" text-anchor="end" dominant-baseline="middle">${(i / 10).toFixed(1)}</text>`);
  }
  out.push(`<text x="${m.left + plotW / 2}" y="${m.top + plotH + 36}" text-anchor="middle">one-way delay (log scale)</text>`);
  out.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">fraction of packets</text>`);
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    if (s.values.length > 0) {
      const pts = s.values.map((v, k) => `${x(v).toFixed(1)},${y((k + 1) / s.values.length).toFixed(1)}`);
      out.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.6" points="${x(s.values[0]!).toFixed(1)},${y(0).toFixed(1)} ${pts.join(' ')}"/>`);
    }
    const ly = height + 16 * i;
    out.push(`<line x1="${m.left}" y1="${ly}" x2="${m.left + 24}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`);
    out.push(`<text x="${m.left + 30}" y="${ly}" dominant-baseline="middle">${esc(s.label)}${s.values.length ? '' : ' (no data)'}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
