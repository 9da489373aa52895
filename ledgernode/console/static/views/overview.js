// Network at a glance: the chain and head, rates over the last minute, each validator,
// mempool fill, round changes, and the latest records (refreshed as blocks commit).

import {h, link, replace, shortHex, table} from '../dom.js';
import {getJson} from '../api.js';
import {t, time} from '../i18n.js';

const WINDOW_MS = 60_000;
const SAMPLES_MAX = 200;
const RECENT_BLOCKS = 5;
const RECENT_RECORDS = 10;
const samples = [];  // {at, height, log_size}: kept across visits of the view

function sample(status) {
  const at = Date.now();
  samples.push({at, height: status.height, log_size: status.log_size});
  while (samples.length > SAMPLES_MAX || (samples.length > 1 && at - samples[0].at > WINDOW_MS)) samples.shift();
}

function rates() {
  if (samples.length < 2) return null;
  const first = samples[0];
  const last = samples[samples.length - 1];
  const secs = (last.at - first.at) / 1000;
  if (secs <= 0) return null;
  return {rps: (last.log_size - first.log_size) / secs, bps: (last.height - first.height) / secs, secs};
}

function roundChanges(metrics) {
  const m = /^ledgernode_events_total\{event="round_changes"\} (\d+)$/m.exec(metrics);
  return m ? Number(m[1]) : 0;
}

function card(label, value, note) {
  return h('div', {class: 'card'}, h('div', {class: 'label'}, label), h('div', {class: 'value'}, value),
    note ? h('div', {class: 'note'}, note) : null);
}

function mempoolBar(n, max) {
  const bar = h('div', {class: 'bar'}, h('div', {class: 'fill'}));
  const pct = max ? Math.min(100, (100 * n) / max) : 0;
  bar.firstChild.style.width = pct.toFixed(1) + '%';  // CSSOM, allowed under the CSP
  return h('div', {}, `${n} / ${max ?? '?'}`, bar);
}

function validators(list) {
  return table(
    [t('v.index'), t('v.name'), t('v.dept'), t('v.key'), t('v.link'), t('v.vote'), t('v.primary')],
    (list || []).map((v) => [String(v.index), v.name, v.dept, h('span', {class: 'mono'}, v.key_id),
      h('span', {class: 'link-' + v.link}, t('link.' + v.link)),
      v.last_vote === null ? t('none') : link('#/block/' + v.last_vote, String(v.last_vote)),
      v.primary ? h('strong', {class: 'primary'}, '★ ' + t('yes')) : t('no')]),
    'grid validators');
}

async function latestRecords(head, cache) {
  for (const k of cache.keys()) if (k <= head - RECENT_BLOCKS) cache.delete(k);
  const heights = [];
  for (let x = head; x >= 1 && heights.length < RECENT_BLOCKS; x--) heights.push(x);
  const docs = await Promise.all(heights.map(async (x) => {
    if (!cache.has(x)) cache.set(x, await getJson('/v1/blocks/' + x));
    return cache.get(x);
  }));
  const out = [];
  for (const b of docs) for (const r of [...(b.records || [])].reverse()) out.push({...r, height: b.height, time_ms: b.time_ms});
  return out.slice(0, RECENT_RECORDS);
}

export async function overview(view, {live}) {
  const cache = new Map();
  const top = h('section', {class: 'cards'});
  const vals = h('section', {});
  const recent = h('section', {id: 'recent'});
  replace(view, h('h1', {}, t('ov.title')), top, h('h2', {}, t('ov.validators')), vals,
    h('h2', {}, t('ov.recent')), recent);
  let shownHeight = -1;

  async function draw(status) {
    sample(status);
    const metrics = await fetch('/metrics').then((r) => r.text()).catch(() => '');
    const r = rates();
    const note = r ? t('ov.window', Math.round(r.secs)) : null;
    replace(top,
      card(t('ov.chain'), status.chain_id),
      card(t('ov.node'), h('span', {class: 'mono'}, status.key_id)),
      card(t('ov.height'), link('#/block/' + status.height, String(status.height))),
      card(t('ov.time'), time(status.head_time_ms)),
      card(t('ov.records'), String(status.log_size)),
      card(t('ov.rps'), r ? r.rps.toFixed(2) : '—', note),
      card(t('ov.bps'), r ? r.bps.toFixed(2) : '—', note),
      card(t('ov.mempool'), mempoolBar(status.mempool, status.mempool_max)),
      card(t('ov.round'), String(status.round)),
      card(t('ov.rounds'), String(roundChanges(metrics))));
    replace(vals, validators(status.validator_list));
    if (status.height !== shownHeight && status.height > 0) {
      shownHeight = status.height;
      const rows = await latestRecords(status.height, cache);
      replace(recent, table([t('b.height'), t('r.type'), t('r.subject'), t('r.dept'), t('r.id')],
        rows.map((x) => [link('#/block/' + x.height, String(x.height)), x.type,
          link('#/search?' + new URLSearchParams({q: x.subject}), x.subject), x.signer_dept ?? '—',
          link('#/record/' + x.id, shortHex(x.id, 16), {class: 'mono', 'data-id': x.id})])));
    }
  }
  return live.subscribe((status) => { draw(status).catch(() => {}); });
}
