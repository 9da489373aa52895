// Search: a record id, or a subject (certificate numbers and dataset ids are subjects):
// every route that may know the text is asked, and what answers is listed.

import {h, link, replace} from '../dom.js';
import {ApiFailure, getJson, isRecordId, seg} from '../api.js';
import {t} from '../i18n.js';
import {LISTED_RECORDS_MAX, recordTable} from './record.js';

async function orNull(promise) {
  try { return await promise; } catch (err) {
    if (err instanceof ApiFailure && err.status === 404) return null;
    throw err;
  }
}

export async function search(view, {query}) {
  const q = (query.get('q') || '').trim();
  document.getElementById('search-q').value = q;
  const out = h('div', {id: 'results'});
  replace(view, h('h1', {}, t('s.title'), ': ', h('span', {class: 'mono'}, q)), out);
  if (!q) return;
  const found = [];
  if (isRecordId(q.toLowerCase())) {
    const rec = await orNull(getJson('/v1/records/' + q.toLowerCase()));
    if (rec) found.push(h('p', {class: 'hit'}, link('#/record/' + rec.id, t('s.record', rec.id), {class: 'mono', 'data-id': rec.id})));
  }
  const subject = q.length <= 256 ? await orNull(getJson(`/v1/subjects/${seg(q)}?limit=${LISTED_RECORDS_MAX}`)) : null;
  if (subject && subject.total > 0) {
    const listed = await recordTable(subject.records.map((r) => r.id));
    const types = new Set(listed.docs.map((d) => d.record.type));
    const kinds = [...types];
    if (kinds.some((x) => x.startsWith('cert.'))) found.push(h('p', {class: 'hit'}, link('#/cert/' + seg(q), t('s.cert', q))));
    if (kinds.some((x) => x.startsWith('dataset.') || x.startsWith('share.'))) {
      found.push(h('p', {class: 'hit'}, link('#/dataset/' + seg(q), t('s.dataset', q))));
    }
    found.push(h('h2', {}, t('s.subject', subject.total, q)), listed.table, listed.more);
  }
  replace(out, found.length ? found : h('p', {class: 'muted'}, t('s.none', q)));
}
