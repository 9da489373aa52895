// Blocks: a paged list from the head down, and one block with its records decoded.

import {body, facts, h, link, replace, shortHex, table} from '../dom.js';
import {getJson} from '../api.js';
import {t, time} from '../i18n.js';

export const PAGE_BLOCKS = 20;

function pager(before, head) {
  const newer = before + PAGE_BLOCKS <= head ? link('#/blocks?before=' + Math.min(head, before + PAGE_BLOCKS), t('b.newer')) : null;
  const older = before - PAGE_BLOCKS >= 1 ? link('#/blocks?before=' + (before - PAGE_BLOCKS), t('b.older')) : null;
  return h('p', {class: 'pager'}, newer, ' ', older);
}

export async function blocks(view, {query, live}) {
  const fixed = query.has('before');
  const list = h('div', {id: 'block-list'});
  replace(view, h('h1', {}, t('b.title')), list);
  let drawn = -1;
  async function draw(status) {
    const head = status.height;
    if (head === drawn) return;
    drawn = head;
    if (head === 0) { replace(list, h('p', {}, t('b.none'))); return; }
    const wanted = Number(query.get('before'));
    const before = fixed && Number.isInteger(wanted) && wanted >= 1 ? Math.min(wanted, head) : head;
    const heights = [];
    for (let x = before; x >= 1 && heights.length < PAGE_BLOCKS; x--) heights.push(x);
    const docs = await Promise.all(heights.map((x) => getJson('/v1/blocks/' + x)));
    replace(list, table([t('b.height'), t('b.time'), t('b.records'), t('b.round'), t('b.proposer'), t('b.hash')],
      docs.map((b) => [link('#/block/' + b.height, String(b.height)), time(b.time_ms), String(b.envelopes.length),
        String(b.qc.round), String(b.proposer), h('span', {class: 'mono'}, shortHex(b.qc.block_hash, 16))])),
    pager(before, head));
  }
  if (fixed) {
    await draw(live.status || await getJson('/v1/status'));
    return null;
  }
  return live.subscribe((status) => { draw(status).catch(() => {}); });
}

export function recordRows(records) {
  return records.map((r) => h('article', {class: 'record'},
    h('h3', {}, link('#/record/' + r.id, `${r.type} · ${r.subject}`)),
    facts([[t('r.id'), h('span', {class: 'mono'}, r.id)], [t('r.leaf'), String(r.leaf_index)],
      [t('r.signer'), h('span', {class: 'mono'}, r.key)], [t('r.dept'), r.signer_dept ?? '—'],
      [t('r.time'), time(r.ts)],
      r.refs && r.refs.length ? [t('r.refs'), r.refs.map((x) => [link('#/record/' + x, shortHex(x, 16), {class: 'mono'}), ' '])] : null,
      [t('r.body'), body(r.body)]])));
}

export async function block(view, {arg}) {
  const height = Number(arg);
  if (!Number.isInteger(height) || height < 1) {
    replace(view, h('p', {class: 'error'}, t('not_found', arg)));
    return;
  }
  const b = await getJson('/v1/blocks/' + height);
  const signers = b.qc.signatures.map((x) => String(x.validator)).join(', ');
  replace(view, h('h1', {}, t('b.detail', b.height)),
    facts([[t('b.hash'), h('span', {class: 'mono'}, b.block_hash)], [t('b.time'), time(b.time_ms)],
      [t('b.round'), String(b.qc.round)], [t('b.proposer'), String(b.proposer)], [t('b.signers'), signers],
      [t('b.logsize'), String(b.log_size)], [t('b.logroot'), h('span', {class: 'mono'}, b.log_root)]]),
    h('p', {class: 'pager'}, height > 1 ? link('#/block/' + (height - 1), t('b.older')) : null),
    h('h2', {}, t('b.records') + ` (${b.records.length})`),
    b.records.length ? recordRows(b.records) : h('p', {}, t('b.empty')));
}
