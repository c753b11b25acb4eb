// The run as an SVG (no dependencies): one bar per judged row, on a log2 axis of "how far from
// the target" (1 = exactly at the threshold; right of it passes, left fails), labelled with the
// measured value or ratio and the target.
import { fmtNum } from './stats.js';
import { cell, type Row } from './report.js';

const W = 1120;
const LABEL_W = 390;
const BAR_W = 380;
const ROW_H = 22;
const TOP = 64;
/** log2 range of the axis: 1/16 .. 16. */
const SPAN = 4;

const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function renderChart(rows: Row[], title: string, subtitle: string): string {
  const judged = rows.filter((r) => r.target && r.target.score !== null);
  const unjudged = rows.filter((r) => r.target && r.target.score === null);
  const h = TOP + (judged.length + unjudged.length) * ROW_H + 50;
  const x0 = LABEL_W + BAR_W / 2; // the target line
  const xOf = (score: number): number => {
    const l = Math.max(-SPAN, Math.min(SPAN, Math.log2(Math.max(score, 2 ** -SPAN))));
    return x0 + (l / SPAN) * (BAR_W / 2);
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${h}" fill="#fff"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="10" y="38" fill="#555">${esc(subtitle)}</text>`);
  // Axis: 1/16 .. 16, the target at 1.
  for (let l = -SPAN; l <= SPAN; l++) {
    const x = x0 + (l / SPAN) * (BAR_W / 2);
    out.push(`<line x1="${x}" y1="${TOP - 8}" x2="${x}" y2="${h - 40}" stroke="${l === 0 ? '#333' : '#e3e3e3'}" stroke-width="${l === 0 ? 1.5 : 1}"/>`);
    out.push(`<text x="${x}" y="${TOP - 12}" text-anchor="middle" fill="#777" font-size="10">${l === 0 ? 'target' : l < 0 ? `1/${2 ** -l}` : `${2 ** l}×`}</text>`);
  }
  let y = TOP;
  for (const r of judged) {
    const score = r.target!.score!;
    const x = xOf(score);
    const color = r.target!.pass ? '#2e9d4f' : '#d1453b';
    out.push(`<text x="${LABEL_W - 8}" y="${y + 15}" text-anchor="end">${esc(r.workload)}</text>`);
    const width = Math.max(3, Math.abs(x - x0));
    out.push(`<rect x="${x >= x0 ? x0 : x0 - width}" y="${y + 4}" width="${width}" height="${ROW_H - 8}" fill="${color}"/>`);
    const floorScore = r.floorTarget?.score;
    if (floorScore !== undefined && floorScore !== null) {
      const fx = xOf(floorScore);
      out.push(`<path d="M${fx} ${y + 2} l-4 -5 h8 z M${fx} ${y + ROW_H - 2} l-4 5 h8 z" fill="#222"><title>the floor: ${esc(fmtNum(floorScore, 2))} of the target</title></path>`);
    }
    const value = r.target!.on === 'ratio' ? `${fmtNum(r.ratio, 2)}× (${cell(r.cairn, r.unit)} vs ${cell(r.peer, r.unit)})` : cell(r.cairn, r.unit);
    out.push(`<text x="${LABEL_W + BAR_W + 8}" y="${y + 15}" fill="${color}">${esc(`${value}  (${r.target!.text})`)}</text>`);
    y += ROW_H;
  }
  for (const r of unjudged) {
    out.push(`<text x="${LABEL_W - 8}" y="${y + 15}" text-anchor="end" fill="#999">${esc(r.workload)}</text>`);
    out.push(`<text x="${x0 + 6}" y="${y + 15}" fill="#999">not measured (${esc(r.target!.text)})</text>`);
    y += ROW_H;
  }
  const passed = judged.filter((r) => r.target!.pass).length;
  out.push(`<text x="10" y="${h - 16}" fill="#555">${passed} of ${judged.length} targets met. Bars: measured ÷ threshold (higher-is-better) or threshold ÷ measured (lower-is-better), log scale; ▼▲ where the floor (the least work of Cairn's shape) got.</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
