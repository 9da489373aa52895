// One record: its decoded body, signer and department, block, and the downloads.

import {body, facts, h, link, replace, shortHex} from '../dom.js';
import {getJson, isRecordId, seg, signedFetch} from '../api.js';
import {keyId} from '../signer.js';
import {t, time} from '../i18n.js';

// Where a record's subject leads, by its type's family.
function subjectLinks(type, subject) {
  if (type.startsWith('cert.')) return [link('#/cert/' + seg(subject), t('r.certstatus'))];
  if (type.startsWith('dataset.') || type.startsWith('share.')) return [link('#/dataset/' + seg(subject), t('r.shares'))];
  return [];
}

// Unlocked, a download is fetched with a signed read and saved from memory: a plain link
// would be an unsigned request, which a node with authenticated reads refuses.
async function signedDownload(event) {
  if (!keyId()) return;
  event.preventDefault();
  const a = event.currentTarget;
  const resp = await signedFetch(a.getAttribute('href'), '*/*');
  if (!resp.ok) {
    a.after(h('span', {class: 'error'}, ' ', t('error', `${resp.status}`)));
    return;
  }
  const url = URL.createObjectURL(await resp.blob());
  const save = h('a', {href: url, download: a.getAttribute('download') || 'download'});
  save.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export async function record(view, {arg}) {
  if (!isRecordId(arg)) {
    replace(view, h('p', {class: 'error'}, t('not_found', arg)));
    return;
  }
  const doc = await getJson('/v1/records/' + arg);
  const rec = doc.record || {};
  const committed = doc.status === 'committed';
  const downloads = committed ? h('p', {class: 'actions'},
    link(`/v1/records/${arg}/evidence`, t('r.evidence'),
      {download: `evidence-${arg.slice(0, 16)}.json`, class: 'button', onclick: signedDownload}),
    ' ',
    link(`/v1/records/${arg}/certificate`, t('r.certificate'),
      {target: '_blank', rel: 'noopener', class: 'button', download: keyId() ? `certificate-${arg.slice(0, 16)}.html` : null,
        onclick: signedDownload})) : null;
  replace(view, h('h1', {}, t('r.title'), ' ', h('span', {class: 'mono small'}, shortHex(arg, 16))),
    facts([
      [t('r.id'), h('span', {class: 'mono'}, doc.id)],
      [t('r.status'), doc.status],
      [t('r.type'), rec.type ?? '—'],
      [t('r.subject'), rec.subject === undefined ? '—' : [link('#/search?' + new URLSearchParams({q: rec.subject}), rec.subject), ' ',
        ...(rec.type ? subjectLinks(rec.type, rec.subject) : [])]],
      [t('r.signer'), h('span', {class: 'mono'}, rec.key ?? '—')],
      [t('r.dept'), doc.signer_dept ?? '—'],
      [t('r.block'), doc.height ? link('#/block/' + doc.height, String(doc.height)) : '—'],
      [t('r.leaf'), doc.leaf_index === null || doc.leaf_index === undefined ? '—' : String(doc.leaf_index)],
      [t('r.time'), time(rec.ts)],
      rec.refs && rec.refs.length ? [t('r.refs'), rec.refs.map((x) => [link('#/record/' + x, shortHex(x, 16), {class: 'mono'}), ' '])] : null,
      [t('r.body'), rec.body === undefined ? '—' : body(rec.body)],
    ]),
    downloads,
    committed ? h('p', {class: 'actions'}, link(`#/provenance/${arg}?direction=back`, t('r.back')), ' · ',
      link(`#/provenance/${arg}?direction=forward`, t('r.forward'))) : null);
}

export const LISTED_RECORDS_MAX = 50;  // records fetched one by one to show their type and subject

// A table of records named by id (an answer's "records"), each fetched for its fields.
export async function recordTable(ids) {
  const shown = ids.slice(0, LISTED_RECORDS_MAX);
  const docs = await Promise.all(shown.map((id) => getJson('/v1/records/' + id)));
  const rows = docs.map((d) => [link('#/block/' + d.height, String(d.height)), d.record.type, d.record.subject,
    d.signer_dept ?? '—', time(d.record.ts), link('#/record/' + d.id, shortHex(d.id, 16), {class: 'mono', 'data-id': d.id})]);
  const tableEl = h('table', {class: 'grid'},
    h('thead', {}, h('tr', {}, [t('b.height'), t('r.type'), t('r.subject'), t('r.dept'), t('r.time'), t('r.id')].map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
  return {table: tableEl, docs, more: ids.length > shown.length ? h('p', {class: 'muted'}, t('s.more', LISTED_RECORDS_MAX)) : null};
}
