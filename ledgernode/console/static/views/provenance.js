// A product's provenance as an SVG graph: records in columns by their distance from the
// chosen one, an arrow from each record to a record it was made from (its refs).

import {h, link, replace, s, shortHex} from '../dom.js';
import {getJson, isRecordId} from '../api.js';
import {t} from '../i18n.js';
import {LISTED_RECORDS_MAX} from './record.js';

const NODE_W = 200;
const NODE_H = 54;
const GAP_X = 80;
const GAP_Y = 18;
const PAD = 16;
const LABEL_CHARS = 26;

// Distance of every record from the root, walking the edges away from it.
function levels(root, edges, direction) {
  const next = new Map();
  for (const [from, to] of edges) {
    const [a, b] = direction === 'forward' ? [to, from] : [from, to];
    if (!next.has(a)) next.set(a, []);
    next.get(a).push(b);
  }
  const level = new Map([[root, 0]]);
  const queue = [root];
  while (queue.length) {
    const x = queue.shift();
    for (const y of next.get(x) || []) {
      if (!level.has(y)) { level.set(y, level.get(x) + 1); queue.push(y); }
    }
  }
  return level;
}

function clip(text) {
  const str = String(text);
  return str.length > LABEL_CHARS ? str.slice(0, LABEL_CHARS - 1) + '…' : str;
}

function graph(root, edges, direction, labels) {
  const level = levels(root, edges, direction);
  const columns = [];
  for (const [id, l] of level) (columns[l] = columns[l] || []).push(id);
  const pos = new Map();
  columns.forEach((ids, l) => ids.forEach((id, row) => {
    pos.set(id, {x: PAD + l * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y)});
  }));
  const width = PAD * 2 + columns.length * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  const marker = s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '8',
    markerHeight: '8', orient: 'auto-start-reverse'}, s('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'}));
  const lines = edges.filter(([a, b]) => pos.has(a) && pos.has(b)).map(([from, to]) => {
    const a = pos.get(from);
    const b = pos.get(to);
    const leftToRight = a.x < b.x;
    const x1 = leftToRight ? a.x + NODE_W : a.x;
    const x2 = leftToRight ? b.x : b.x + NODE_W;
    return s('line', {x1, y1: a.y + NODE_H / 2, x2, y2: b.y + NODE_H / 2, class: 'edge', 'marker-end': 'url(#arrow)'});
  });
  const nodes = [...pos].map(([id, p]) => {
    const rec = labels.get(id);
    const g = s('a', {href: '#/record/' + id, class: 'node' + (id === root ? ' root' : ''), 'data-id': id},
      s('rect', {x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: '6'}),
      s('text', {x: p.x + 8, y: p.y + 18, class: 'type'}, clip(rec ? rec.type : '?')),
      s('text', {x: p.x + 8, y: p.y + 33}, clip(rec ? rec.subject : '')),
      s('text', {x: p.x + 8, y: p.y + 47, class: 'id'}, shortHex(id, 16)));
    return g;
  });
  return s('svg', {xmlns: 'http://www.w3.org/2000/svg', class: 'provenance', id: 'provenance-graph',
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img'}, s('defs', {}, marker), lines, nodes);
}

export async function provenance(view, {arg, query}) {
  const direction = query.get('direction') === 'forward' ? 'forward' : 'back';
  const input = h('input', {id: 'prov-id', type: 'text', maxlength: '64', value: arg, class: 'mono', size: '66'});
  const pick = h('select', {id: 'prov-direction'},
    h('option', {value: 'back', selected: direction === 'back' ? 'selected' : null}, t('p.back')),
    h('option', {value: 'forward', selected: direction === 'forward' ? 'selected' : null}, t('p.forward')));
  const formEl = h('form', {class: 'inline'}, h('label', {for: 'prov-id'}, t('p.id')), input, pick,
    h('button', {type: 'submit'}, t('c.show')));
  formEl.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = input.value.trim().toLowerCase();
    if (id) location.hash = `#/provenance/${id}?direction=${pick.value}`;
  });
  const out = h('div', {id: 'prov-result'});
  replace(view, h('h1', {}, t('p.title')), formEl, out);
  if (!arg) return;
  if (!isRecordId(arg)) { replace(out, h('p', {class: 'error'}, t('not_found', arg))); return; }
  const doc = await getJson(`/v1/provenance/${arg}?direction=${direction}`);
  const ids = doc.records.map((r) => r.id).slice(0, LISTED_RECORDS_MAX);
  const recs = await Promise.all(ids.map((id) => getJson('/v1/records/' + id)));
  const labels = new Map(recs.map((d) => [d.id, d.record]));
  replace(out, h('p', {}, t('p.graph', doc.records.length, doc.edges.length), ' · ',
    link(`#/provenance/${arg}?direction=${direction === 'back' ? 'forward' : 'back'}`,
      direction === 'back' ? t('p.forward') : t('p.back'))),
  h('div', {class: 'scroll'}, graph(doc.root, doc.edges, direction, labels)));
}
