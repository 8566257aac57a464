// The admin pages' only script, no dependencies. It adds what a plain form cannot do: copy a
// token to the clipboard, ask before destructive actions, post a form in the background
// ("Test connection", "Send test webhook") to show the answer in a live region, and keep
// account state badges current from the server's change stream (/admin/changes).
'use strict';

function describe(result) {
  // Builds the result text with DOM nodes, never innerHTML: answers may carry remote text.
  const box = document.createElement('div');
  const line = (ok, label, detail) => {
    const p = document.createElement('p');
    const strong = document.createElement('span');
    strong.className = ok ? 'ok' : 'fail';
    strong.textContent = label;
    p.appendChild(strong);
    if (detail) p.appendChild(document.createTextNode(' ' + detail));
    box.appendChild(p);
  };
  if (result && 'target' in result) {
    const when = typeof result.duration === 'number' ? ' in ' + result.duration + ' ms' : '';
    if (result.success) {
      line(true, 'Delivered:', 'the receiver answered HTTP ' + result.statusCode + when + '.');
    } else {
      line(false, 'Failed:', (result.error || 'no answer') + when + '.');
    }
    return box;
  }
  for (const [name, r] of Object.entries(result || {})) {
    const label = name.toUpperCase();
    if (r && r.success) line(true, label + ' OK', 'login succeeded.');
    else line(false, label + ' failed:', (r && (r.error || r.message)) || 'unknown error');
  }
  if (!box.childNodes.length) line(false, 'Nothing to test', '');
  return box;
}

document.addEventListener('click', async (event) => {
  const copy = event.target.closest('[data-copy]');
  if (copy) {
    const input = document.getElementById(copy.dataset.copy);
    const status = document.getElementById('copy-status');
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      if (status) status.textContent = 'Copied to the clipboard.';
    } catch (e) {
      if (status) status.textContent = 'Press Ctrl+C (or ⌘C) to copy the selected token.';
    }
    return;
  }
  const poster = event.target.closest('[data-json-post]');
  if (poster) {
    const form = poster.closest('form');
    const out = document.getElementById(poster.dataset.result);
    out.textContent = 'Working…';
    poster.disabled = true;
    try {
      const response = await fetch(poster.dataset.jsonPost, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        headers: { 'Accept': 'application/json' },
        credentials: 'same-origin',
      });
      const result = await response.json().catch(() => ({ success: false, error: 'HTTP ' + response.status }));
      out.replaceChildren(describe(result));
    } catch (e) {
      out.textContent = 'The request failed: ' + e.message;
    } finally {
      poster.disabled = false;
    }
  }
});

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

function errorText(error) {
  // The same choice of text as the server-rendered pages make from an account's lastError.
  if (!error) return '';
  if (typeof error === 'string') return error;
  const text = error.response || error.message || error.serverResponseCode;
  return text === undefined ? JSON.stringify(error) : String(text);
}

function showState(account, state, error, clearError) {
  for (const badge of document.querySelectorAll('[data-account-state]')) {
    if (badge.dataset.accountState !== account) continue;
    badge.textContent = state;
    badge.className = 'badge state-' + state;
  }
  if (!error && !clearError) return;
  for (const cell of document.querySelectorAll('[data-account-error]')) {
    if (cell.dataset.accountError !== account) continue;
    cell.textContent = errorText(error) || (cell.tagName === 'DD' ? '—' : '');
  }
}

// Accounts that had a change since the last catch-up began: its answer may be older.
const changedSince = new Set();

async function catchUp() {
  // The stream has no replay: once it is open, read the states that may have changed between
  // rendering the page and subscribing.
  const ids = [...new Set([...document.querySelectorAll('[data-account-state]')].map((b) => b.dataset.accountState))];
  if (!ids.length) return;
  changedSince.clear();
  const query = new URLSearchParams(ids.map((id) => ['account', id]));
  const response = await fetch('/admin/accounts/states?' + query, {
    headers: { 'Accept': 'application/json' },
    credentials: 'same-origin',
  });
  if (!response.ok) return;
  const { accounts } = await response.json();
  for (const a of accounts) {
    if (!changedSince.has(a.account)) showState(a.account, a.state, a.error, true);
  }
}

async function refreshCounts(list) {
  // The dashboard's accounts-by-state list, rebuilt from the server's counts.
  const response = await fetch('/admin/dashboard/states', {
    headers: { 'Accept': 'application/json' },
    credentials: 'same-origin',
  });
  if (!response.ok) return;
  const counts = await response.json();
  const items = counts.states.map(({ state, count }) => {
    const li = document.createElement('li');
    const link = document.createElement('a');
    link.href = '/admin/accounts?state=' + encodeURIComponent(state);
    const badge = document.createElement('span');
    badge.className = 'badge state-' + state;
    badge.textContent = state;
    link.appendChild(badge);
    li.append(link, ' ' + count);
    return li;
  });
  list.replaceChildren(...items);
  const total = document.getElementById('accounts-total');
  if (total) total.textContent = String(counts.accounts);
}

const stateCounts = document.getElementById('account-states');
if ((stateCounts || document.querySelector('[data-account-state]')) && 'EventSource' in window) {
  let pending = null;
  const changes = new EventSource('/admin/changes');
  changes.addEventListener('open', () => {
    catchUp().catch(() => {});
    if (stateCounts) refreshCounts(stateCounts).catch(() => {});
  });
  changes.addEventListener('message', (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!change || change.type !== 'state' || typeof change.account !== 'string') return;
    changedSince.add(change.account);
    const error = change.payload && change.payload.error;
    showState(change.account, change.key, error, change.key === 'connected');
    // Several changes often come together (connecting, syncing, connected): one fetch.
    if (stateCounts && !pending) {
      pending = setTimeout(() => {
        pending = null;
        refreshCounts(stateCounts).catch(() => {});
      }, 500);
    }
  });
}
