// switchboard dashboard: the live parts of the server-rendered pages.
// Written for this project (no framework). The REST API is reached through
// the dashboard's session-checked proxy at /ui/api/v1; every state-changing
// request carries the session's CSRF token in X-CSRF-Token.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
const page = document.body.dataset.page;

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { 'x-csrf-token': csrf } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch('/ui/api/v1' + path, init);
  } catch {
    return { ok: false, status: 0, data: { detail: 'switchboard did not answer; is it still running?' } };
  }
  if (response.status === 401) {
    location.assign('/login');
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  return { ok: response.ok, status: response.status, data };
}

// ---- time --------------------------------------------------------------
function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleString();
}
function renderTimes(root = document) {
  for (const t of root.querySelectorAll('time[data-ms]')) {
    const ms = Number(t.dataset.ms);
    t.textContent = ago(ms);
    t.dateTime = new Date(ms).toISOString();
  }
}
renderTimes();
setInterval(renderTimes, 15000);

// ---- the live stream ----------------------------------------------------
// Read with fetch rather than EventSource: the stream names each event by
// its type, and EventSource can only listen to names known in advance.
const live = document.getElementById('live');
function setLive(state, text) {
  if (!live) return;
  live.dataset.state = state;
  live.textContent = text;
}

function stream(query, onEvent) {
  let after = null;
  let stopped = false;
  async function run() {
    while (!stopped) {
      const params = new URLSearchParams(query);
      if (after !== null) params.set('after', after);
      try {
        const response = await fetch('/ui/api/v1/events/stream?' + params, { credentials: 'same-origin' });
        if (response.status === 401) { location.assign('/login'); return; }
        if (!response.ok || !response.body) throw new Error(String(response.status));
        setLive('live', 'Live');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id = null, data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('id:')) id = line.slice(3).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trimStart();
            }
            if (!data) continue;
            if (id !== null) after = id;
            try { onEvent(JSON.parse(data)); } catch (e) { console.error(e); }
          }
        }
      } catch { /* fall through to reconnect */ }
      if (stopped) return;
      setLive('down', 'Live updates disconnected — reconnecting…');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  run();
  return () => { stopped = true; };
}

// ---- errors next to their fields ----------------------------------------
function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error, .form-error')) p.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}
function showProblem(form, problem) {
  const fields = [...form.querySelectorAll('[data-field]')];
  const general = form.querySelector('.form-error') ?? form.querySelector('.field-error');
  const errors = problem?.errors ?? [];
  let placed = 0;
  for (const error of errors) {
    // The longest field path that is a prefix of the one named.
    let best = null;
    for (const el of fields) {
      const f = el.dataset.field;
      if ((error.field === f || error.field.startsWith(f + '.') || error.field.startsWith(f + '['))
        && (!best || f.length > best.dataset.field.length)) best = el;
    }
    if (best) {
      const container = best.closest('.field, fieldset');
      const slot = container?.querySelector(':scope > .field-error');
      if (slot) {
        slot.textContent = error.message;
        best.setAttribute('aria-invalid', 'true');
        if (placed === 0) best.focus?.();
        placed++;
        continue;
      }
    }
    if (general) general.textContent += `${error.field}: ${error.message} `;
  }
  if (errors.length === 0 && general) general.textContent = problem?.detail ?? 'The request failed.';
}

// ---- connections --------------------------------------------------------
function updateCard(event) {
  const card = document.getElementById('c-' + event.connection_id);
  if (!card) return;
  const status = card.querySelector('.status');
  status.dataset.status = event.payload.status;
  status.querySelector('.status-text').textContent = event.payload.status.replace('_', ' ');
  const t = status.querySelector('time');
  t.dataset.ms = event.at;
  renderTimes(status);
  card.querySelector('.reason').textContent = event.payload.reason ?? '';
}

const CONFIRM = {
  disable: (label) => `Disable ${label}? It disconnects and stops running actions until enabled again.`,
  restart: (label) => `Restart ${label}? It reconnects with its current settings and secrets.`,
  delete: (label) => `Delete ${label}? Its settings, secrets and data key are removed for good.`,
};

async function cardAction(card, action, button) {
  const id = card.dataset.id;
  const label = card.dataset.label;
  const error = card.querySelector('.card-error');
  error.textContent = '';
  if (CONFIRM[action] && !confirm(CONFIRM[action](label))) return;
  let popup = null;
  if (action === 'connect') {
    // Opened inside the click so the browser allows it; pointed at the
    // authorize URL once the API returns it.
    popup = window.open('about:blank', 'sb-connect-' + id, 'popup,width=560,height=720');
  }
  button.disabled = true;
  let result;
  switch (action) {
    case 'connect': result = await api('POST', `/connections/${id}/connect`); break;
    case 'enable': result = await api('PATCH', `/connections/${id}`, { enabled: true }); break;
    case 'disable': result = await api('PATCH', `/connections/${id}`, { enabled: false }); break;
    case 'restart': result = await api('POST', `/connections/${id}/restart`); break;
    case 'delete': result = await api('DELETE', `/connections/${id}`); break;
  }
  button.disabled = false;
  if (!result.ok) {
    popup?.close();
    error.textContent = result.data?.detail ?? `The request failed (${result.status}).`;
    return;
  }
  if (action === 'connect') {
    const url = result.data.authorize_url;
    if (popup) {
      popup.location.href = url;
    } else {
      error.textContent = '';
      const a = document.createElement('a');
      a.href = url; a.target = '_blank'; a.rel = 'noopener';
      a.textContent = 'Your browser blocked the popup: open the consent page';
      error.append(a);
    }
  } else if (action === 'delete') {
    card.remove();
  } else if (action === 'enable' || action === 'disable') {
    const enabled = action === 'enable';
    button.dataset.action = enabled ? 'disable' : 'enable';
    button.textContent = enabled ? 'Disable' : 'Enable';
    const header = card.querySelector('header');
    header.querySelector('.pill')?.remove();
    if (!enabled) {
      const pill = document.createElement('span');
      pill.className = 'pill'; pill.textContent = 'disabled';
      header.append(pill);
    }
  }
}

function connectionsPage() {
  const cards = document.getElementById('cards');
  cards.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]');
    if (button) cardAction(button.closest('.card'), button.dataset.action, button);
  });
  cards.addEventListener('submit', async (e) => {
    const form = e.target.closest('.secret-form');
    if (!form) return;
    e.preventDefault();
    clearErrors(form);
    const card = form.closest('.card');
    const name = form.elements.name.value;
    const result = await api('PUT', `/connections/${card.dataset.id}/secrets`, { [name]: form.elements.value.value });
    if (!result.ok) {
      showProblem(form, result.data);
      return;
    }
    form.reset();
    form.closest('details').open = false;
    const mark = card.querySelector(`[data-secret="${CSS.escape(name)}"]`);
    if (mark) { mark.className = 'set'; mark.textContent = `${name} ✓ set`; }
  });
  stream({ type: 'connection.status' }, (event) => {
    if (event.type === 'connection.status') updateCard(event);
  });
}

// ---- add a connection ---------------------------------------------------
function readValue(el) {
  const kind = el.dataset.kind;
  if (kind === 'boolean') return el.checked ? true : undefined;
  const raw = el.value.trim();
  if (raw === '') return undefined;
  if (kind === 'integer' || kind === 'number') return Number(raw);
  if (kind === 'json') {
    try { return JSON.parse(raw); } catch { return { __invalid_json: true }; }
  }
  return kind === 'secret' ? el.value : raw;
}

function newConnectionPage() {
  const form = document.getElementById('new-connection');
  if (!form) return;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = { connector: form.dataset.connector, label: form.elements.label.value.trim(), enabled: form.elements.enabled.checked, settings: {}, secrets: {} };
    const bad = [];
    for (const el of form.querySelectorAll('[data-kind]')) {
      const value = readValue(el);
      if (value === undefined) continue;
      if (value && value.__invalid_json) { bad.push({ field: el.dataset.field, message: 'is not valid JSON' }); continue; }
      const path = el.dataset.field.split('.');
      let target = body;
      for (const key of path.slice(0, -1)) target = target[key] ??= {};
      target[path.at(-1)] = value;
    }
    if (bad.length) { showProblem(form, { errors: bad }); return; }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    const result = await api('POST', '/connections', body);
    button.disabled = false;
    if (result.ok) location.assign('/#c-' + result.data.id);
    else showProblem(form, result.data);
  });
}

// ---- jobs ---------------------------------------------------------------
function jobPage() {
  const retry = document.getElementById('retry');
  if (!retry) return;
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    const result = await api('POST', `/jobs/${retry.dataset.job}/retry`);
    if (result.ok) location.reload();
    else {
      retry.disabled = false;
      document.querySelector('.form-error').textContent = result.data?.detail ?? 'Retry failed.';
    }
  });
}
function filtersInUrl() {
  // Filters live in the URL; a change applies at once.
  const form = document.querySelector('form.filters');
  form?.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT') form.requestSubmit(); });
}

// ---- events -------------------------------------------------------------
function eventsPage() {
  const list = document.getElementById('events');
  const pause = document.getElementById('pause');
  let paused = false;
  const held = [];
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? `Resume` : 'Pause';
    if (!paused) { held.splice(0).forEach(add); }
  });
  function add(event) {
    document.getElementById('no-events')?.remove();
    const li = document.createElement('li');
    li.className = 'event fresh';
    li.dataset.id = event.id;
    const a = document.createElement('a');
    a.href = '/events/' + event.id;
    const code = document.createElement('code');
    code.className = 'kind'; code.textContent = event.type;
    a.append(code);
    const t = document.createElement('time');
    t.dataset.ms = event.at;
    li.append(a, ' ', t);
    if (event.connection_id) {
      const c = document.createElement('span');
      c.className = 'conn'; c.textContent = event.connection_id;
      li.append(' ', c);
    }
    const pre = document.createElement('pre');
    pre.className = 'json payload'; pre.textContent = JSON.stringify(event.payload);
    li.append(pre);
    renderTimes(li);
    list.prepend(li);
    while (list.children.length > 500) list.lastElementChild.remove();
  }
  const query = {};
  if (list.dataset.kind) query.type = list.dataset.kind;
  if (list.dataset.connection) query.connection_id = list.dataset.connection;
  query.after = list.dataset.last;
  stream(query, (event) => {
    if (paused) {
      held.push(event);
      pause.textContent = `Resume (${held.length} new)`;
    } else add(event);
  });
}

switch (page) {
  case 'connections': connectionsPage(); break;
  case 'new': newConnectionPage(); break;
  case 'jobs': filtersInUrl(); break;
  case 'job': jobPage(); break;
  case 'events': eventsPage(); break;
}
if (!['connections', 'events'].includes(page) && live) {
  // Pages without a live part still show that the daemon is reachable.
  stream({ type: 'connection.status' }, () => {});
}
