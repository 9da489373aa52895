// Auditors' answers shown for people: a certificate's status at a chosen time, and a
// dataset's grants and accesses. (`ledgernode verify --kind ...` checks the same answers.)

import {facts, h, link, replace, shortHex, table} from '../dom.js';
import {getJson, seg} from '../api.js';
import {t, time} from '../i18n.js';
import {recordTable} from './record.js';

function form(id, label, value, extra, go) {
  const input = h('input', {id, name: id, type: 'text', maxlength: '256', required: 'required', value});
  const el = h('form', {class: 'inline', id: id + '-form'}, h('label', {for: id}, label), input, ...extra,
    h('button', {type: 'submit'}, t('c.show')));
  el.addEventListener('submit', (event) => { event.preventDefault(); go(input.value.trim()); });
  return el;
}

// A datetime-local value (UTC) for ms, and back.
const localValue = (ms) => new Date(ms).toISOString().slice(0, 16);
const fromLocal = (text) => { const ms = Date.parse(text + 'Z'); return Number.isNaN(ms) ? null : ms; };

export async function certificate(view, {arg, query}) {
  const atParam = Number(query.get('at'));
  const atMs = Number.isInteger(atParam) && atParam > 0 ? atParam : null;
  const at = h('input', {id: 'cert-at', type: 'datetime-local', value: localValue(atMs ?? Date.now())});
  const out = h('div', {id: 'cert-result'});
  replace(view, h('h1', {}, t('c.title')),
    form('cert-number', t('c.number'), arg, [h('label', {for: 'cert-at'}, t('c.at') + ' (UTC)'), at], (number) => {
      if (!number) return;
      const ms = fromLocal(at.value);
      location.hash = '#/cert/' + seg(number) + (ms === null ? '' : '?at=' + ms);
    }), out);
  if (!arg) return;
  const doc = await getJson(`/v1/certificates/${seg(arg)}/status` + (atMs === null ? '' : '?at=' + atMs));
  const listed = await recordTable(doc.records.map((r) => r.id));
  replace(out, h('h2', {}, t('c.status', time(doc.at))),
    h('p', {class: 'status status-' + doc.status, id: 'cert-status'}, t('st.' + doc.status)),
    facts([[t('c.number'), doc.number], [t('c.issuer'), doc.issuer ?? '—']]),
    h('h2', {}, t('c.history')), listed.table, listed.more);
}

function grantRows(grants) {
  return grants.map((g) => [
    link('#/record/' + g.grant, shortHex(g.grant, 12), {class: 'mono'}), g.to_dept, g.purpose, g.legal_basis,
    time(g.expires), g.revoked_by ? link('#/record/' + g.revoked_by, shortHex(g.revoked_by, 12), {class: 'mono'}) : '—',
    g.accesses.length ? h('ul', {class: 'plain'}, g.accesses.map((a) => h('li', {},
      link('#/record/' + a.record, shortHex(a.record, 12), {class: 'mono'}), ` ${a.dept} · ${a.purpose} · ${time(a.ts)}`)))
      : t('d.noaccess'),
  ]);
}

export async function dataset(view, {arg}) {
  const out = h('div', {id: 'dataset-result'});
  replace(view, h('h1', {}, t('d.title')),
    form('dataset-id', t('d.id'), arg, [], (id) => { if (id) location.hash = '#/dataset/' + seg(id); }), out);
  if (!arg) return;
  const doc = await getJson(`/v1/datasets/${seg(arg)}/shares`);
  replace(out, facts([[t('d.id'), doc.dataset], [t('d.owner'), doc.owner ?? '—']]),
    h('h2', {}, t('d.grants') + ` (${doc.grants.length})`),
    doc.grants.length ? table([t('r.id'), t('d.to'), t('d.purpose'), t('d.basis'), t('d.expires'), t('d.revoked'),
      t('d.accesses')], grantRows(doc.grants)) : h('p', {}, t('d.nogrants')));
}
