// fzip's web page: sign in with a bearer token, then back up, download, upload, review and
// restore through the HTTP API, exactly as any other client would.
//
// Plain JavaScript, no build step, no framework. The DOM is built with createElement and
// textContent only, never by parsing markup: file, account and category names are user data.
// Responses are read tolerantly (a missing key is shown as missing, never a crash).
'use strict';

(() => {
  const TOKEN_KEY = 'fzip.token';
  const RESTORE_KEY = 'fzip.restore';
  const PAGE_SIZE = 10;

  // ------------------------------------------------------------------------------------------
  // DOM helpers
  // ------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** An element with attributes and children (strings become text nodes). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  const SVG = 'http://www.w3.org/2000/svg';

  /** An SVG element. */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  // ------------------------------------------------------------------------------------------
  // Formatting
  // ------------------------------------------------------------------------------------------

  const intFormat = new Intl.NumberFormat();
  const moneyFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

  const num = (n) => (typeof n === 'number' && Number.isFinite(n) ? intFormat.format(n) : '—');
  const plural = (n, one, many) => `${num(n)} ${n === 1 ? one : many || one + 's'}`;

  function bytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
    const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? `${intFormat.format(v)} ${units[0]}` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  function when(ms) {
    if (typeof ms !== 'number') return '—';
    return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  /** A transaction date (stored as UTC midnight): shown in UTC so it never shifts a day. */
  function day(ms) {
    if (typeof ms !== 'number') return '—';
    return new Date(ms).toLocaleDateString(undefined, { dateStyle: 'medium', timeZone: 'UTC' });
  }

  function monthLabel(period) {
    const m = /^(\d{4})-(\d{2})$/.exec(period || '');
    if (!m) return period || '?';
    const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
    return d.toLocaleDateString(undefined, { month: 'short', year: '2-digit', timeZone: 'UTC' });
  }

  /**
   * Every month from the first to the last of `periods` (`YYYY-MM`), so a chart's time axis has
   * no holes; periods of another shape come last.
   */
  function monthSpan(periods) {
    const good = periods.filter((p) => /^\d{4}-\d{2}$/.test(p)).sort();
    const odd = [...new Set(periods.filter((p) => !/^\d{4}-\d{2}$/.test(p)))].sort();
    if (!good.length) return odd;
    const out = [];
    let [y, m] = good[0].split('-').map(Number);
    const last = good[good.length - 1];
    for (let i = 0; i < 600; i += 1) {
      const p = `${y}-${String(m).padStart(2, '0')}`;
      out.push(p);
      if (p >= last) break;
      m += 1;
      if (m > 12) {
        m = 1;
        y += 1;
      }
    }
    return out.concat(odd);
  }

  /** `building_fzip_package` → `Building fzip package`. */
  function phaseText(phase) {
    if (!phase) return '';
    const t = String(phase).replace(/(\.\.\.|…)$/, '').replace(/_/g, ' ').trim();
    return t.charAt(0).toUpperCase() + t.slice(1);
  }

  const STATUS = {
    backup_initiated: ['Queued', 'run'],
    backup_processing: ['Running', 'run'],
    backup_completed: ['Completed', 'ok'],
    backup_failed: ['Failed', 'bad'],
    backup_expired: ['Expired', ''],
    restore_uploaded: ['Uploaded', 'run'],
    restore_validating: ['Checking', 'run'],
    restore_validation_passed: ['Checked', 'ok'],
    restore_validation_failed: ['Check failed', 'bad'],
    restore_awaiting_confirmation: ['Awaiting your confirmation', 'wait'],
    restore_processing: ['Restoring', 'run'],
    restore_completed: ['Restored', 'ok'],
    restore_failed: ['Failed', 'bad'],
    restore_canceled: ['Canceled', ''],
  };

  function statusBadge(status, job) {
    // HouseF3's first restore status is `restore_uploaded`, even before the package arrives.
    const waiting = status === 'restore_uploaded' && job && !job.uploadedAt;
    const [label, tone] = waiting ? ['Waiting for the package', 'wait'] : STATUS[status] || [phaseText(status) || 'Unknown', ''];
    return h('span', { class: `badge ${tone}`, text: label, title: status, dataset: { status: status || '' } });
  }

  const BACKUP_RUNNING = new Set(['backup_initiated', 'backup_processing']);
  const RESTORE_MOVING = new Set(['restore_uploaded', 'restore_validating', 'restore_processing']);

  // ------------------------------------------------------------------------------------------
  // Notices and the connection banner: every failure is shown
  // ------------------------------------------------------------------------------------------

  function notify(text, tone) {
    const close = h('button', { type: 'button', 'aria-label': 'Dismiss', text: '×' });
    const box = h('div', { class: `notice ${tone || ''}`, role: tone === 'bad' ? 'alert' : 'status' }, h('p', { text }), close);
    close.addEventListener('click', () => box.remove());
    $('notices').append(box);
    // Successes fade away; failures stay until dismissed.
    if (tone !== 'bad') setTimeout(() => box.remove(), 6000);
  }

  let connectionTimer = null;

  function connectionProblem(error, retryInMs) {
    const banner = $('connection');
    const until = Date.now() + retryInMs;
    const render = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      $('connection-text').textContent = `Cannot reach the server (${error.message}). Retrying in ${left} s; nothing you started is lost.`;
    };
    render();
    banner.hidden = false;
    clearInterval(connectionTimer);
    connectionTimer = setInterval(render, 1000);
  }

  function connectionOk() {
    if (!$('connection').hidden) {
      $('connection').hidden = true;
      clearInterval(connectionTimer);
    }
  }

  // ------------------------------------------------------------------------------------------
  // The API
  // ------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.body = body || {};
    }
  }

  let token = null;

  async function api(method, path, body) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${token}` };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'NETWORK', e && e.message ? e.message : 'network error');
    }
    const text = await response.text().catch(() => '');
    let data = {};
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { message: text.slice(0, 300) };
      }
    }
    if (response.status >= 500) {
      throw new ApiError(response.status, (data && data.error) || `HTTP_${response.status}`,
        (data && (data.detail || data.message)) || `the server answered ${response.status}`, data);
    }
    connectionOk();
    if (response.status === 401) {
      const why = (data && (data.detail || data.message)) || 'the token was refused';
      signOut(`Signed out: ${why}. Sign in again with a fresh token.`);
      throw new ApiError(401, 'UNAUTHORIZED', why, data);
    }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || `HTTP_${response.status}`,
        (data && (data.detail || data.message)) || response.statusText || `HTTP ${response.status}`, data);
    }
    return data || {};
  }

  const isConnectionError = (e) => e instanceof ApiError && (e.status === 0 || e.status >= 500);

  // ------------------------------------------------------------------------------------------
  // Polling: fast while a job moves, slower while it waits, stopped at terminal states, backing
  // off (visibly) while the server cannot be reached, resuming by itself when it is back.
  // ------------------------------------------------------------------------------------------

  const pollers = new Set();

  class Poller {
    /** `step` resolves to 'moving', 'waiting' or 'done'. */
    constructor(step, options) {
      this.step = step;
      this.fast = (options && options.fast) || 1000;
      this.slow = (options && options.slow) || 8000;
      this.onFailure = options && options.onFailure;
      this.timer = null;
      this.active = false;
      this.busy = false;
      this.delay = this.fast;
      this.failures = 0;
    }

    start(immediately) {
      this.active = true;
      this.delay = this.fast;
      pollers.add(this);
      this.schedule(immediately === false ? this.fast : 0);
    }

    stop() {
      this.active = false;
      clearTimeout(this.timer);
      pollers.delete(this);
    }

    kick() {
      if (this.active) this.schedule(0);
    }

    schedule(ms) {
      clearTimeout(this.timer);
      // A hidden tab polls at most every 15 s.
      const wait = document.hidden ? Math.max(ms, 15000) : ms;
      this.timer = setTimeout(() => this.run(), wait);
    }

    async run() {
      if (!this.active || this.busy) return;
      this.busy = true;
      let next = null;
      try {
        const result = await this.step();
        this.failures = 0;
        if (result === 'done') {
          this.stop();
        } else {
          this.delay = result === 'moving' ? this.fast : Math.min(this.slow, Math.round(this.delay * 1.6));
          next = this.delay;
        }
      } catch (e) {
        if (isConnectionError(e)) {
          this.failures += 1;
          next = Math.min(30000, 1000 * 2 ** Math.min(this.failures, 5));
          connectionProblem(e, next);
        } else {
          this.stop();
          if (this.onFailure) this.onFailure(e);
          else if (!(e instanceof ApiError && e.status === 401)) notify(`Could not refresh: ${e.message}`, 'bad');
        }
      } finally {
        this.busy = false;
      }
      if (this.active && next !== null) this.schedule(next);
    }
  }

  function stopAllPollers() {
    for (const p of [...pollers]) p.stop();
  }

  $('connection-retry').addEventListener('click', () => {
    for (const p of pollers) p.kick();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) for (const p of pollers) p.kick();
  });

  // ------------------------------------------------------------------------------------------
  // A confirmation dialog (a <dialog>, not window.confirm)
  // ------------------------------------------------------------------------------------------

  function confirmAction(title, text, yesLabel) {
    const dialog = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = yesLabel || 'Delete';
    return new Promise((resolve) => {
      const done = (answer) => {
        $('confirm-yes').removeEventListener('click', yes);
        $('confirm-no').removeEventListener('click', no);
        dialog.removeEventListener('cancel', no);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      $('confirm-yes').addEventListener('click', yes);
      $('confirm-no').addEventListener('click', no);
      dialog.addEventListener('cancel', no);
      dialog.showModal();
      $('confirm-no').focus();
    });
  }

  // ------------------------------------------------------------------------------------------
  // Signing in
  // ------------------------------------------------------------------------------------------

  /** The token's claims, for display only (the server checks the signature). */
  function claimsOf(jwt) {
    const parts = String(jwt).split('.');
    if (parts.length !== 3) return null;
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
      const raw = atob(padded);
      const utf8 = new TextDecoder().decode(Uint8Array.from(raw, (c) => c.charCodeAt(0)));
      const claims = JSON.parse(utf8);
      return claims && typeof claims === 'object' ? claims : null;
    } catch {
      return null;
    }
  }

  function showSignedIn(claims) {
    $('signin').hidden = true;
    $('tabs').hidden = false;
    $('who').hidden = false;
    $('who-name').textContent = claims.sub;
    if (typeof claims.exp === 'number') $('who').title = `Token valid until ${when(claims.exp * 1000)}`;
    route();
  }

  function signOut(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(RESTORE_KEY);
    stopAllPollers();
    restore.reset();
    backups.reset();
    profile.reset();
    for (const v of document.querySelectorAll('.view')) v.hidden = true;
    $('tabs').hidden = true;
    $('who').hidden = true;
    $('who-name').textContent = '';
    $('signin').hidden = false;
    $('token').value = '';
    const err = $('signin-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('token').focus();
  }

  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const err = $('signin-error');
    const candidate = $('token').value.trim().replace(/^Bearer\s+/i, '');
    const claims = claimsOf(candidate);
    const fail = (text) => {
      err.textContent = text;
      err.hidden = false;
    };
    if (!claims || typeof claims.sub !== 'string' || !claims.sub) {
      fail('That is not a token: a token is three dot-separated parts (eyJ….eyJ….…) and names a user (sub).');
      return;
    }
    if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) {
      fail(`That token expired at ${when(claims.exp * 1000)}. Ask for a new one (fzip token --user ${claims.sub}).`);
      return;
    }
    $('signin-button').disabled = true;
    err.hidden = true;
    token = candidate;
    try {
      await api('GET', '/fzip/profile');
      sessionStorage.setItem(TOKEN_KEY, candidate);
      showSignedIn(claims);
    } catch (e) {
      token = null;
      // A 401 has already reset the form; say why.
      fail(e.status === 401 ? `The server refused this token: ${e.message}.` : `Could not sign in: ${e.message}`);
    } finally {
      $('signin-button').disabled = false;
    }
  });

  $('sign-out').addEventListener('click', () => signOut(''));

  // ------------------------------------------------------------------------------------------
  // Tabs
  // ------------------------------------------------------------------------------------------

  const views = {
    backups: () => backups.show(),
    restore: () => restore.show(),
    profile: () => profile.show(),
  };

  function route() {
    if (!token) return;
    let tab = location.hash.replace(/^#/, '');
    if (!views[tab]) tab = 'backups';
    for (const a of document.querySelectorAll('#tabs a')) {
      if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    for (const name of Object.keys(views)) $(`view-${name}`).hidden = name !== tab;
    document.body.dataset.tab = tab;
    // Confirmations belong to the tab they were given on; failures stay until dismissed.
    for (const n of document.querySelectorAll('.notice:not(.bad)')) n.remove();
    views[tab]();
  }

  window.addEventListener('hashchange', route);

  // ------------------------------------------------------------------------------------------
  // Backups
  // ------------------------------------------------------------------------------------------

  const QUALITY = { excellent: 'Excellent', good: 'Good', fair: 'Fair', poor: 'Poor' };
  /** Error codes of a package that is itself at fault: checking it again cannot help. */
  const PACKAGE_FAULTS = new Set(['VALIDATION_FAILED', 'PACKAGE_UNREADABLE', 'PACKAGE_TOO_LARGE', 'INVALID_PACKAGE']);

  function qualityView(v) {
    if (!v || !v.overall_quality) return null;
    const q = String(v.overall_quality).toLowerCase();
    const score = (x) => (typeof x === 'number' ? `${x.toFixed(x % 1 ? 1 : 0)} / 100` : '—');
    const title = `Data integrity ${score(v.data_integrity_score)}, completeness ${score(v.completeness_score)}, ` +
      `${num(v.files_processed)} statement files included, ${num(v.files_failed)} missing or damaged`;
    const rows = [
      ['Data integrity', score(v.data_integrity_score)],
      ['Completeness', score(v.completeness_score)],
      ['Statement files included', num(v.files_processed)],
      ['Statement files missing or damaged', num(v.files_failed)],
      // compression_ratio is the space saved, in percent of the uncompressed size.
      ['Space saved by compression', typeof v.compression_ratio === 'number'
        ? `${Math.min(100, Math.max(0, v.compression_ratio)).toFixed(1)} %` : '—'],
      ['Time taken', typeof v.processing_time_seconds === 'number' ? `${v.processing_time_seconds.toFixed(1)} s` : '—'],
    ];
    const list = (label, items) => (Array.isArray(items) && items.length
      ? [h('p', { class: 'muted', text: label }), h('ul', null, items.map((i) => h('li', { text: String(i) })))]
      : null);
    return h('details', { class: 'quality', title },
      h('summary', null, 'Quality ', h('span', { class: `badge q-${q}`, text: QUALITY[q] || q, dataset: { quality: q } }), ' — scores'),
      h('dl', null, rows.map(([k, val]) => [h('dt', { text: k }), h('dd', { text: val })])),
      list('Issues', v.issues),
      list('Recommendations', v.recommendations));
  }

  const TYPE_LABEL = {
    complete: 'Complete',
    accounts_only: 'Accounts only',
    transactions_only: 'Transactions only',
    categories_only: 'Categories only',
    selective: 'Selective',
  };

  function progressView(label, percent, detail) {
    const p = h('progress', { max: 100 });
    if (typeof percent === 'number') p.value = Math.max(0, Math.min(100, percent));
    return h('div', { class: 'progress' },
      h('div', { class: 'progress-label' }, h('span', { text: label }),
        h('span', { text: detail || (typeof percent === 'number' ? `${Math.round(percent)} %` : '') })),
      p);
  }

  const backups = {
    offset: 0,
    total: 0,
    last: '',
    poller: null,
    loaded: false,

    reset() {
      this.offset = 0;
      this.loaded = false;
      this.last = '';
      $('backup-list').replaceChildren(h('p', { class: 'muted', text: 'Loading backups…' }));
      $('backup-form').reset();
      $('backup-filters').hidden = true;
      filters.loaded = false;
    },

    show() {
      this.refresh();
    },

    /** Loads the current page; starts polling while a backup runs. */
    async refresh() {
      try {
        const state = await this.load();
        if (state !== 'done') this.poll();
      } catch (e) {
        if (isConnectionError(e)) {
          connectionProblem(e, 1000);
          this.poll();
        } else if (e.status !== 401) this.showError(e);
      }
    },

    poll() {
      if (!this.poller) this.poller = new Poller(() => this.load(), { fast: 1000, slow: 8000 });
      if (!this.poller.active) this.poller.start(false);
    },

    showError(e) {
      $('backup-list').replaceChildren(h('div', { class: 'card bad', role: 'alert' },
        h('p', { class: 'error-text', text: `The backups could not be loaded: ${e.message}` }),
        h('button', { type: 'button', class: 'small', text: 'Try again', onclick: () => this.refresh() })));
    },

    async load() {
      const data = await api('GET', `/fzip/backup?limit=${PAGE_SIZE}&offset=${this.offset}`);
      // An expired backup is `backup_completed` with a past `expiresAt` (as HouseF3's client
      // expects) and `expired: true`; this page shows it as expired.
      const items = (Array.isArray(data.backups) ? data.backups : [])
        .map((b) => (b.expired === true ? { ...b, status: 'backup_expired' } : b));
      this.total = typeof data.total === 'number' ? data.total : items.length;
      if (items.length === 0 && this.offset > 0) {
        this.offset = Math.max(0, this.offset - PAGE_SIZE);
        return this.load();
      }
      this.render(items, data);
      this.loaded = true;
      const running = items.filter((b) => BACKUP_RUNNING.has(b.status));
      const fingerprint = JSON.stringify(running.map((b) => [b.backupId, b.status, b.progress, b.currentPhase]));
      const moved = fingerprint !== this.last;
      this.last = fingerprint;
      if (running.length === 0) return 'done';
      return moved ? 'moving' : 'waiting';
    },

    render(items, data) {
      const list = $('backup-list');
      if (items.length === 0) {
        list.replaceChildren(h('p', { class: 'empty', text: 'No backups yet. Create one above: it runs on the server, and you can leave this page meanwhile.' }));
      } else {
        // Keep open quality details open across refreshes.
        const open = new Set([...list.querySelectorAll('details[open]')].map((d) => d.closest('.job') && d.closest('.job').dataset.id));
        list.replaceChildren(...items.map((b) => this.item(b, open.has(b.backupId))));
      }
      const from = items.length ? this.offset + 1 : 0;
      const to = this.offset + items.length;
      $('backups-range').textContent = items.length ? `${num(from)}–${num(to)} of ${num(this.total)}` : '';
      $('backups-prev').disabled = this.offset === 0;
      $('backups-next').disabled = !data.hasMore && to >= this.total;
    },

    item(b, detailsOpen) {
      const id = b.backupId || b.jobId;
      const running = BACKUP_RUNNING.has(b.status);
      const title = b.description || `${TYPE_LABEL[b.backupType] || 'Complete'} backup`;
      const meta = [
        h('span', { text: `${TYPE_LABEL[b.backupType] || b.backupType || 'Complete'}${b.includeAnalytics ? ' · with analytics' : ''}` }),
        h('span', { text: `Started ${when(b.createdAt)}` }),
        b.completedAt ? h('span', { text: `Finished ${when(b.completedAt)}` }) : null,
        typeof b.packageSize === 'number' ? h('span', { text: bytes(b.packageSize), class: 'size' }) : null,
        b.status === 'backup_completed' && b.expiresAt ? h('span', { text: `Kept until ${when(b.expiresAt)}` }) : null,
        b.dataSummary && typeof b.dataSummary.transactions === 'number'
          ? h('span', { text: `${plural(b.dataSummary.accounts, 'account')}, ${plural(b.dataSummary.transactions, 'transaction')}` })
          : null,
      ];
      const actions = [];
      if (b.status === 'backup_completed') {
        actions.push(h('button', { type: 'button', class: 'primary small download', text: 'Download', onclick: (e) => this.download(id, e.currentTarget) }));
      }
      actions.push(h('button', { type: 'button', class: 'quiet small delete', text: 'Delete', onclick: () => this.remove(b) }));
      const extra = [];
      if (running) {
        extra.push(progressView(phaseText(b.currentPhase) || 'Waiting for a worker', b.progress));
      }
      if (b.status === 'backup_failed' && (b.error || b.errorMessage)) {
        extra.push(h('p', { class: 'error-text', role: 'alert', text: `Failed: ${b.error || b.errorMessage}` }));
      }
      if (b.status === 'backup_expired') {
        extra.push(h('p', { class: 'muted', text: 'The package was kept as long as the server keeps packages and has been removed.' }));
      }
      const quality = qualityView(b.validation);
      if (quality) {
        if (detailsOpen) quality.open = true;
        extra.push(quality);
      }
      return h('article', { class: 'job', dataset: { id, status: b.status || '' } },
        h('div', { class: 'job-title' }, statusBadge(b.status), h('span', { class: 'job-name', text: title })),
        h('div', { class: 'job-actions' }, actions),
        h('div', { class: 'job-meta' }, meta),
        extra.length ? h('div', { class: 'job-extra' }, extra) : null);
    },

    async download(id, button) {
      button.disabled = true;
      try {
        const d = await api('GET', `/fzip/backup/${encodeURIComponent(id)}/download?format=json`);
        if (!d.downloadUrl) throw new ApiError(410, 'GONE', 'the server gave no download link');
        // A plain navigation: the package comes straight from the server or object storage.
        const a = h('a', { href: d.downloadUrl, download: d.filename || `backup_${id}.fzip`, rel: 'noopener' });
        document.body.append(a);
        a.click();
        a.remove();
        notify(`Downloading ${d.filename || 'the backup'}${typeof d.packageSize === 'number' ? ` (${bytes(d.packageSize)})` : ''}.`);
      } catch (e) {
        if (e.status !== 401) notify(`The download could not start: ${e.message}`, 'bad');
        if (e.status === 410 || e.status === 404) this.refresh();
      } finally {
        button.disabled = false;
      }
    },

    async remove(b) {
      const id = b.backupId || b.jobId;
      const name = b.description ? `“${b.description}”` : 'this backup';
      const ok = await confirmAction('Delete this backup?',
        `Delete ${name} from ${when(b.createdAt)}? Its package is deleted too; this cannot be undone.`, 'Delete backup');
      if (!ok) return;
      try {
        await api('DELETE', `/fzip/backup/${encodeURIComponent(id)}`);
        notify('Backup deleted.');
      } catch (e) {
        if (e.status !== 401) notify(`The backup could not be deleted: ${e.message}`, 'bad');
      }
      this.refresh();
    },
  };

  $('backups-refresh').addEventListener('click', () => backups.refresh());
  $('backups-prev').addEventListener('click', () => {
    backups.offset = Math.max(0, backups.offset - PAGE_SIZE);
    backups.refresh();
  });
  $('backups-next').addEventListener('click', () => {
    backups.offset += PAGE_SIZE;
    backups.refresh();
  });

  // The selective filters list the profile's accounts and categories.
  const filters = {
    loaded: false,
    async load() {
      if (this.loaded) return;
      this.loaded = true;
      try {
        const data = await api('GET', '/fzip/profile/analytics');
        const accounts = (data.accounts || []).slice().sort((a, b) => String(a.accountName).localeCompare(String(b.accountName)));
        $('backup-accounts').replaceChildren(...(accounts.length
          ? accounts.map((a) => h('label', null, h('input', { type: 'checkbox', value: a.accountId, name: 'account' }),
            `${a.accountName || a.accountId}${a.currency ? ` (${a.currency})` : ''}`))
          : [h('p', { class: 'muted', text: 'No accounts.' })]));
        const tree = categoryTree(data.categories || []);
        $('backup-categories').replaceChildren(...(tree.length
          ? tree.map(({ c, depth }) => h('label', { class: `depth-${Math.min(depth, 3)}` },
            h('input', { type: 'checkbox', value: c.categoryId, name: 'category' }), c.name || c.categoryId))
          : [h('p', { class: 'muted', text: 'No categories.' })]));
      } catch (e) {
        this.loaded = false;
        const msg = h('p', { class: 'error-text', text: `Could not load the lists: ${e.message}` });
        $('backup-accounts').replaceChildren(msg);
        $('backup-categories').replaceChildren();
      }
    },
  };

  /** Categories in tree order with their depth (cycles and orphans end up at the root). */
  function categoryTree(categories) {
    const byParent = new Map();
    const ids = new Set(categories.map((c) => c.categoryId));
    for (const c of categories) {
      const parent = c.parentCategoryId && ids.has(c.parentCategoryId) ? c.parentCategoryId : '';
      if (!byParent.has(parent)) byParent.set(parent, []);
      byParent.get(parent).push(c);
    }
    for (const list of byParent.values()) list.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const out = [];
    const seen = new Set();
    const walk = (parent, depth) => {
      for (const c of byParent.get(parent) || []) {
        if (seen.has(c.categoryId)) continue;
        seen.add(c.categoryId);
        out.push({ c, depth });
        walk(c.categoryId, depth + 1);
      }
    };
    walk('', 0);
    for (const c of categories) if (!seen.has(c.categoryId)) out.push({ c, depth: 0 });
    return out;
  }

  $('backup-type').addEventListener('change', () => {
    const selective = $('backup-type').value === 'selective';
    $('backup-filters').hidden = !selective;
    if (selective) filters.load();
  });

  const dayStart = (value) => (value ? Date.parse(`${value}T00:00:00Z`) : undefined);
  const dayEnd = (value) => (value ? Date.parse(`${value}T23:59:59.999Z`) : undefined);

  $('backup-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const type = $('backup-type').value;
    const body = {
      backupType: type,
      includeAnalytics: $('backup-analytics').checked,
      continueOnMissingFiles: $('backup-continue').checked,
    };
    const description = $('backup-description').value.trim();
    if (description) body.description = description;
    if (type === 'selective') {
      const checked = (name) => [...document.querySelectorAll(`#backup-filters input[name="${name}"]:checked`)].map((i) => i.value);
      const accounts = checked('account');
      const categories = checked('category');
      if (accounts.length) body.accountIds = accounts;
      if (categories.length) body.categoryIds = categories;
      const from = dayStart($('backup-from').value);
      const to = dayEnd($('backup-to').value);
      if (from !== undefined) body.dateRangeStart = from;
      if (to !== undefined) body.dateRangeEnd = to;
      if (from !== undefined && to !== undefined && from > to) {
        notify('The start date is after the end date.', 'bad');
        return;
      }
      if (!accounts.length && !categories.length && from === undefined && to === undefined) {
        notify('Pick at least one account, category or date for a selective backup (or choose “Complete profile”).', 'bad');
        return;
      }
    }
    const button = $('backup-create');
    button.disabled = true;
    try {
      await api('POST', '/fzip/backup', body);
      notify('Backup started. It runs on the server; its progress shows below.');
      $('backup-description').value = '';
      backups.offset = 0;
      await backups.refresh();
    } catch (e) {
      if (e.status !== 401) notify(`The backup could not be started: ${e.message}`, 'bad');
    } finally {
      button.disabled = false;
    }
  });

  // ------------------------------------------------------------------------------------------
  // Restore
  // ------------------------------------------------------------------------------------------

  const ENTITY_ROWS = [
    ['accounts', 'Accounts'],
    ['categories', 'Categories'],
    ['file_maps', 'File maps'],
    ['transaction_files', 'Statement files'],
    ['transactions', 'Transactions'],
    ['analytics', 'Analytics records'],
  ];

  const HOLDS = [
    ['accounts_count', 'account'],
    ['transactions_count', 'transaction'],
    ['categories_count', 'category', 'categories'],
    ['file_maps_count', 'file map'],
    ['transaction_files_count', 'statement file'],
    ['analytics_count', 'analytics record'],
  ];

  const restore = {
    jobId: null,
    file: null,
    xhr: null,
    poller: null,
    last: '',

    stage() {
      return $('restore-stage');
    },

    set(state, ...children) {
      const stage = this.stage();
      stage.dataset.state = state;
      stage.replaceChildren(...children.flat().filter(Boolean));
    },

    reset() {
      if (this.xhr) this.xhr.abort();
      this.xhr = null;
      if (this.poller) this.poller.stop();
      this.jobId = null;
      this.file = null;
      this.last = '';
      this.idle();
    },

    show() {
      this.loadList();
      if (this.jobId) {
        if (!this.xhr) this.watch(this.jobId);
        return;
      }
      const saved = sessionStorage.getItem(RESTORE_KEY);
      if (saved) this.watch(saved);
      else if (this.stage().dataset.state === 'idle' || !this.stage().firstChild) this.idle();
    },

    remember(id) {
      this.jobId = id;
      if (id) sessionStorage.setItem(RESTORE_KEY, id);
      else sessionStorage.removeItem(RESTORE_KEY);
    },

    // ---- choosing a file

    idle() {
      const input = h('input', { type: 'file', id: 'restore-file', accept: '.fzip,.zip,application/zip', 'aria-label': 'Backup package (.fzip)' });
      const zone = h('label', { class: 'dropzone', for: 'restore-file', tabindex: '0' },
        h('span', { class: 'big', 'aria-hidden': 'true', text: '⇪' }),
        h('strong', { text: 'Drop a .fzip backup here, or click to choose one' }),
        h('span', { class: 'muted', text: 'It is uploaded, checked, and shown to you before anything is restored.' }),
        input);
      input.addEventListener('change', () => {
        if (input.files && input.files[0]) this.begin(input.files[0]);
      });
      zone.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          input.click();
        }
      });
      for (const type of ['dragenter', 'dragover']) {
        zone.addEventListener(type, (e) => {
          e.preventDefault();
          if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
          zone.classList.add('over');
        });
      }
      zone.addEventListener('dragleave', () => zone.classList.remove('over'));
      zone.addEventListener('drop', (e) => {
        e.preventDefault();
        zone.classList.remove('over');
        const files = e.dataTransfer && e.dataTransfer.files;
        if (!files || files.length === 0) return;
        if (files.length > 1) {
          notify('Drop one backup at a time.', 'bad');
          return;
        }
        this.begin(files[0]);
      });
      this.set('idle', zone);
    },

    /** Creates the restore job (the server checks the profile is empty first), then uploads. */
    async begin(file) {
      if (!/\.(fzip|zip)$/i.test(file.name)) {
        this.failed('Not a backup package', `“${file.name}” is not a .fzip file. Choose a package made by a backup.`, null);
        return;
      }
      if (file.size === 0) {
        this.failed('Empty file', `“${file.name}” is empty.`, null);
        return;
      }
      this.file = file;
      this.set('creating', progressView(`Preparing to upload ${file.name}…`, undefined, bytes(file.size)));
      let created;
      try {
        created = await api('POST', '/fzip/restore', {});
      } catch (e) {
        if (e.code === 'PROFILE_NOT_EMPTY') this.notEmpty(e.body, null, () => this.begin(file));
        else if (e.status !== 401) this.failed('The restore could not be started', e.message, null);
        return;
      }
      const id = created.restoreId || created.jobId;
      const upload = created.uploadUrl || {};
      this.remember(id);
      this.loadList();
      if (typeof upload.maxSize === 'number' && file.size > upload.maxSize) {
        await api('DELETE', `/fzip/restore/${encodeURIComponent(id)}`).catch(() => {});
        this.remember(null);
        this.failed('Too large', `“${file.name}” is ${bytes(file.size)}; this server accepts packages up to ${bytes(upload.maxSize)}.`, null);
        return;
      }
      try {
        await this.upload(file, upload);
      } catch (e) {
        if (e.code === 'ABORTED') return;
        this.failed('The upload failed', e.message, { id, canRetryUpload: true });
        return;
      }
      try {
        await api('POST', `/fzip/restore/${encodeURIComponent(id)}/upload`, {});
      } catch (e) {
        // The status poll shows what the job is doing (another request may have started it).
        if (e.status === 401) return;
      }
      this.watch(id);
    },

    /** Uploads with real byte progress: a form POST (fields, then `file`) or a plain PUT. */
    upload(file, target) {
      return new Promise((resolve, reject) => {
        if (!target.url) {
          reject(new ApiError(0, 'NO_URL', 'the server gave no upload URL'));
          return;
        }
        const xhr = new XMLHttpRequest();
        this.xhr = xhr;
        const method = String(target.method || 'POST').toUpperCase();
        const bar = h('progress', { max: file.size || 1, value: 0 });
        const amount = h('span', { text: `0 of ${bytes(file.size)}` });
        const cancel = h('button', { type: 'button', class: 'quiet', text: 'Cancel upload' });
        cancel.addEventListener('click', () => xhr.abort());
        this.set('uploading',
          h('div', { class: 'progress' }, h('div', { class: 'progress-label' }, h('span', { text: `Uploading ${file.name}` }), amount), bar),
          h('div', { class: 'actions' }, cancel));
        xhr.upload.addEventListener('progress', (e) => {
          const total = e.lengthComputable ? e.total : file.size;
          bar.max = total || 1;
          bar.value = e.loaded;
          const pct = total ? Math.floor((e.loaded / total) * 100) : 0;
          amount.textContent = `${bytes(e.loaded)} of ${bytes(total)} (${pct} %)`;
        });
        xhr.addEventListener('load', () => {
          this.xhr = null;
          if (xhr.status >= 200 && xhr.status < 300) {
            resolve();
            return;
          }
          let message = `the upload was refused (HTTP ${xhr.status})`;
          try {
            const body = JSON.parse(xhr.responseText);
            message = body.detail || body.message || message;
          } catch {
            const m = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || '');
            if (m) message = `${message}: ${m[1]}`;
          }
          reject(new ApiError(xhr.status, 'UPLOAD_FAILED', message));
        });
        xhr.addEventListener('error', () => {
          this.xhr = null;
          reject(new ApiError(0, 'NETWORK', 'the connection broke off during the upload (or the storage server refused it)'));
        });
        xhr.addEventListener('abort', () => {
          this.xhr = null;
          const id = this.jobId;
          this.remember(null);
          if (id) api('DELETE', `/fzip/restore/${encodeURIComponent(id)}`).catch(() => {}).finally(() => this.loadList());
          this.idle();
          notify('Upload canceled.');
          reject(new ApiError(0, 'ABORTED', 'upload canceled'));
        });
        xhr.open(method, target.url);
        let body;
        if (method === 'PUT') {
          const headers = target.headers && typeof target.headers === 'object' ? target.headers : { 'Content-Type': 'application/zip' };
          for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, String(v));
          body = file;
        } else {
          body = new FormData();
          for (const [k, v] of Object.entries(target.fields || {})) body.append(k, String(v));
          body.append('file', file, file.name);
        }
        xhr.send(body);
      });
    },

    // ---- following the job

    watch(id) {
      this.remember(id);
      this.last = '';
      if (this.poller) this.poller.stop();
      this.poller = new Poller(() => this.poll(id), {
        fast: 700,
        slow: 5000,
        onFailure: (e) => {
          if (e.status === 404) {
            this.remember(null);
            this.idle();
            notify('That restore no longer exists (it was deleted).', 'bad');
          } else if (e.status !== 401) {
            this.failed('The restore status could not be read', e.message, { id });
          }
        },
      });
      if (!this.stage().dataset.state || this.stage().dataset.state === 'idle') {
        this.set('loading', progressView('Loading the restore…'));
      }
      this.poller.start();
    },

    async poll(id) {
      const job = await api('GET', `/fzip/restore/${encodeURIComponent(id)}/status`);
      if (id !== this.jobId) return 'done';
      const fingerprint = JSON.stringify([job.status, job.progress, job.currentPhase]);
      const moved = fingerprint !== this.last;
      this.last = fingerprint;
      if (moved) {
        this.render(job);
        this.loadList();
      }
      if (!RESTORE_MOVING.has(job.status)) return 'done';
      return moved ? 'moving' : 'waiting';
    },

    render(job) {
      const id = job.restoreId || job.jobId;
      switch (job.status) {
        case 'restore_uploaded':
          if (job.uploadedAt) {
            this.set('validating', progressView('Package received; starting the check', job.progress));
            api('POST', `/fzip/restore/${encodeURIComponent(id)}/upload`, {}).catch(() => {});
          } else {
            this.set('waiting-upload',
              h('p', { text: 'This restore is still waiting for its package. The file chosen earlier cannot be sent again from here after the page was reloaded.' }),
              h('div', { class: 'actions' }, this.deleteButton(id, 'Delete and start over')));
          }
          break;
        case 'restore_validating':
          this.set('validating', progressView(`Checking the package: ${phaseText(job.currentPhase).toLowerCase() || 'queued'}`, job.progress),
            h('p', { class: 'hint', text: 'Every entry, checksum and reference is checked before anything is written.' }));
          break;
        case 'restore_awaiting_confirmation':
        case 'restore_validation_passed':
          this.summary(job);
          break;
        case 'restore_processing':
          this.set('processing',
            progressView(`Restoring: ${phaseText(job.currentPhase).toLowerCase() || 'starting'}`, job.progress),
            h('p', { class: 'hint', text: 'All or nothing: if it stops, nothing was written.' }),
            h('div', { class: 'actions' }, h('button', { type: 'button', class: 'quiet', text: 'Stop the restore', onclick: (e) => this.cancel(id, e.currentTarget) })));
          break;
        case 'restore_completed':
          this.results(job);
          break;
        case 'restore_canceled':
          this.set('canceled', h('div', { class: 'card' },
            h('h3', { text: 'Restore canceled' }),
            h('p', { text: 'Nothing was written to your profile.' }),
            h('div', { class: 'actions' }, this.deleteButton(id, 'Remove it'), this.doneButton('Restore another backup'))));
          break;
        case 'restore_validation_failed':
        case 'restore_failed':
          if (job.errorCode === 'PROFILE_NOT_EMPTY') this.notEmptyJob(job);
          else this.failedJob(job);
          break;
        default:
          this.set('unknown', h('p', { text: `The restore is ${job.status || 'in an unknown state'}.` }));
      }
    },

    checks(v) {
      if (!v || typeof v !== 'object') return null;
      const items = [
        ['schemaValid', 'Package readable and well-formed'],
        ['businessValid', 'References consistent'],
        ['profileEmpty', 'Your profile is empty'],
        ['ready', 'Ready to restore'],
      ].filter(([k]) => typeof v[k] === 'boolean');
      return h('ul', { class: 'checks' }, items.map(([k, label]) => h('li', { class: v[k] ? '' : 'no', text: label })));
    },

    summary(job) {
      const id = job.restoreId || job.jobId;
      const sm = job.summary || {};
      const pkg = sm.package || {};
      const acc = sm.accounts || {};
      const cat = sm.categories || {};
      const tx = sm.transactions || {};
      const files = sm.transactionFiles || {};
      const range = tx.dateRangeMs || {}; // `dateRange` is HouseF3's, as YYYY-MM-DD text
      const section = (title, count, ...body) => h('section', null,
        h('h4', null, h('span', { text: title }), h('span', { class: 'count', text: num(count) })), body);
      const list = (items, name, detail, stacked) => (Array.isArray(items) && items.length
        ? h('ul', { class: stacked ? 'stacked' : '' }, items.map((i) => h('li', null, h('span', { class: 'name', text: name(i), title: name(i) }), h('span', { class: 'detail', text: detail(i) }))))
        : h('p', { class: 'muted', text: 'None.' }));
      const origin = [
        pkg.userId ? `of ${pkg.userId}` : '',
        pkg.timestamp ? `made ${Number.isNaN(Date.parse(pkg.timestamp)) ? pkg.timestamp : when(Date.parse(pkg.timestamp))}` : '',
        pkg.backupType ? `(${TYPE_LABEL[pkg.backupType] || pkg.backupType})` : '',
      ].filter(Boolean).join(' ');
      const depth = typeof cat.hierarchyDepth === 'number' ? `${plural(cat.hierarchyDepth, 'level')} deep` : '';
      const extras = [
        typeof range.earliest === 'number' ? `from ${day(range.earliest)} to ${day(range.latest)}` : '',
        sm.fileMaps && typeof sm.fileMaps.count === 'number' ? plural(sm.fileMaps.count, 'file map') : '',
        sm.analytics && typeof sm.analytics.count === 'number' ? `${plural(sm.analytics.count, 'analytics record')} (computed again after the restore)` : '',
      ].filter(Boolean);
      const sentence = (parts) => (parts.length ? `${parts.join('; ')}.`.replace(/^./, (c) => c.toUpperCase()) : '');
      const grid = h('div', { class: 'summary-grid' },
        section('Transactions', tx.count, h('p', { text: sentence(extras) || 'No dates.' })),
        section('Accounts', acc.count,
          list(acc.items, (a) => a.accountName || a.accountId,
            (a) => [a.accountType, a.currency, typeof a.transactionCount === 'number' ? plural(a.transactionCount, 'transaction') : ''].filter(Boolean).join(' · '), true)),
        section('Categories', cat.count,
          h('p', { text: [depth, typeof cat.rootCategories === 'number' ? `${num(cat.rootCategories)} at the top` : '', typeof cat.rules === 'number' ? plural(cat.rules, 'rule') : ''].filter(Boolean).join(', ') }),
          h('p', { class: 'muted', text: 'Most used:' }),
          list(cat.topCategories, (c) => c.name || c.categoryId, (c) => plural(c.transactionCount, 'transaction'))),
        section('Statement files', files.count,
          h('p', { text: `${bytes(files.totalSize)} in all` }),
          list(files.items, (f) => f.fileName || f.fileId, (f) => [f.fileFormat ? String(f.fileFormat).toUpperCase() : '', bytes(f.size)].filter(Boolean).join(' · '), true)));
      grid.firstChild.classList.add('wide');
      const awaiting = job.status === 'restore_awaiting_confirmation';
      this.set('summary',
        h('div', { class: 'card ok' },
          h('h3', { text: awaiting ? 'The package checked out. This is what it will restore:' : 'The package checked out (check only).' }),
          origin || pkg.description ? h('p', { class: 'muted', text: [origin && `Backup ${origin}`, pkg.description && `“${pkg.description}”`].filter(Boolean).join(' — ') }) : null,
          this.checks(job.validationResults),
          warningsOf(job.validationResults).length ? h('details', null, h('summary', { text: `${plural(warningsOf(job.validationResults).length, 'warning')}` }),
            h('ul', { class: 'problems' }, warningsOf(job.validationResults).map((w) => h('li', { text: w })))) : null,
          grid,
          h('div', { class: 'actions' },
            awaiting ? h('button', { type: 'button', class: 'primary', id: 'restore-confirm', text: 'Confirm and restore', onclick: (e) => this.confirm(id, e.currentTarget) }) : null,
            awaiting ? h('button', { type: 'button', class: 'quiet', id: 'restore-cancel', text: 'Cancel', onclick: (e) => this.cancel(id, e.currentTarget) })
              : this.deleteButton(id, 'Remove'))));
    },

    results(job) {
      const r = job.restoreResults || {};
      const rows = ENTITY_ROWS.filter(([k]) => r[k] && typeof r[k] === 'object').map(([k, label]) => {
        const errors = Array.isArray(r[k].errors) ? r[k].errors : [];
        return h('tr', { dataset: { entity: k } }, h('td', { text: label }), h('td', { class: 'num', text: num(r[k].created) }),
          h('td', { class: 'num', text: errors.length ? num(errors.length) : '—' }));
      });
      const extra = [
        typeof r.files_restored === 'number' ? `${plural(r.files_restored, 'statement file')} stored (${bytes(r.file_bytes)})` : '',
        typeof r.processingTimeSeconds === 'number' ? `in ${r.processingTimeSeconds.toFixed(1)} s` : '',
      ].filter(Boolean).join(' ');
      const warnings = Array.isArray(r.warnings) ? r.warnings : [];
      this.set('completed', h('div', { class: 'card ok' },
        h('h3', { text: 'Restore complete' }),
        h('p', { text: `Finished ${when(job.completedAt)}. Everything in the package is now in your profile.` }),
        h('table', { class: 'results' },
          h('thead', null, h('tr', null, h('th', { text: 'What' }), h('th', { class: 'num', text: 'Restored' }), h('th', { class: 'num', text: 'Errors' }))),
          h('tbody', null, rows)),
        extra ? h('p', { class: 'muted', text: extra }) : null,
        warnings.length ? h('ul', { class: 'problems' }, warnings.map((w) => h('li', { text: String(w) }))) : null,
        h('div', { class: 'actions' },
          h('a', { href: '#profile', text: 'See your profile' }),
          this.doneButton('Done'))));
    },

    /** PROFILE_NOT_EMPTY: before any upload (no job: `jobId` is null), or found by a job's check. */
    notEmpty(body, jobId, again) {
      const summary = (body && body.profileSummary) || {};
      const holds = HOLDS.filter(([k]) => typeof summary[k] === 'number' && summary[k] > 0)
        .map(([k, one, many]) => h('li', { text: plural(summary[k], one, many) }));
      const retry = h('button', { type: 'button', class: 'primary', text: 'Try again', id: 'restore-retry' });
      retry.addEventListener('click', () => again(retry));
      const dismiss = jobId ? this.deleteButton(jobId, 'Delete this restore') : this.doneButton('Choose another file');
      this.set('not-empty', h('div', { class: 'card bad', role: 'alert', dataset: { error: 'PROFILE_NOT_EMPTY' } },
        h('h3', { text: 'Your profile is not empty' }),
        h('p', { text: 'A restore only fills an empty profile, so that nothing you have is overwritten or mixed up. This profile holds:' }),
        holds.length ? h('ul', { class: 'holds' }, holds) : h('p', { class: 'muted', text: (body && body.message) || 'some data' }),
        h('p', { class: 'muted', text: (body && body.suggestion) || 'Use a new user account or clear the existing data first.' }),
        h('p', { class: 'hint' }, 'What to do: sign in as a new user and restore there, or clear this profile first (on the server: ',
          h('code', { text: `fzip profile clear --user ${$('who-name').textContent || 'NAME'} --yes` }),
          '), then try again. To add a backup to a profile that has data, use an import (/fzip/import).'),
        h('p', { class: 'muted small', text: `Error code: PROFILE_NOT_EMPTY` }),
        h('div', { class: 'actions' }, retry, dismiss)));
    },

    /** A job whose check found the profile not empty. */
    async notEmptyJob(job) {
      let body = { message: job.error };
      try {
        const p = await api('GET', '/fzip/profile');
        body = {
          message: job.error,
          profileSummary: {
            accounts_count: p.accounts, transactions_count: p.transactions, categories_count: p.categories,
            file_maps_count: p.fileMaps, transaction_files_count: p.transactionFiles, analytics_count: p.analytics,
          },
        };
      } catch {
        // Shown from the job's own message.
      }
      const id = job.restoreId || job.jobId;
      if (id === this.jobId) this.notEmpty(body, id, (button) => this.retry(id, button));
    },

    failedJob(job) {
      const id = job.restoreId || job.jobId;
      const v = job.validationResults || {};
      const problems = [];
      for (const part of [v.schema, v.business, v.profile]) {
        if (part && Array.isArray(part.errors)) problems.push(...part.errors.map(String));
      }
      const report = job.validationReport && Array.isArray(job.validationReport.problems) ? job.validationReport.problems : [];
      if (!problems.length) {
        for (const p of report) {
          if (p && p.severity !== 'warning') problems.push([p.entry, p.message].filter(Boolean).join(': '));
        }
      }
      const title = job.status === 'restore_validation_failed' ? 'The package did not pass the check' : 'The restore failed';
      const message = job.error || job.errorMessage || 'No reason was given.';
      // With the problems listed one by one, the message's own list is only noise.
      const headline = problems.length && message.indexOf(': ') > 0 ? `${message.slice(0, message.indexOf(': '))}.` : message;
      // Retry only where it can change the outcome: not for a package that is itself invalid.
      const retryable = !PACKAGE_FAULTS.has(job.errorCode);
      const retry = retryable ? h('button', { type: 'button', class: 'primary', text: 'Retry', id: 'restore-retry' }) : null;
      if (retry) retry.addEventListener('click', () => this.retry(id, retry));
      this.set('failed', h('div', { class: 'card bad', role: 'alert', dataset: { error: job.errorCode || 'FAILED' } },
        h('h3', { text: title }),
        h('p', { text: headline }),
        this.checks(job.validationResults),
        problems.length ? [h('p', { text: `${plural(problems.length, 'problem')} found:` }),
          h('ul', { class: 'problems' }, problems.map((p) => h('li', { text: p.replace(/^error: /, '') })))] : null,
        job.validationReport && job.validationReport.problemsOmitted ? h('p', { class: 'muted', text: `…and ${num(job.validationReport.problemsOmitted)} more.` }) : null,
        h('p', { class: 'hint', text: retryable
          ? 'Nothing was written to your profile. Retry checks the same package again (useful after clearing the profile or when the server had a problem); Delete removes this restore and its uploaded package.'
          : 'Nothing was written to your profile. Checking this package again would find the same problems: download or copy the backup again, or choose another one; Delete removes this restore and its uploaded package.' }),
        job.errorCode ? h('p', { class: 'muted', text: `Error code: ${job.errorCode}` }) : null,
        h('div', { class: 'actions' }, retry, this.deleteButton(id, 'Delete'))));
    },

    /** A failure outside a job's own status (upload, network). */
    failed(title, message, ctx) {
      const buttons = [];
      if (ctx && ctx.canRetryUpload && this.file) {
        const file = this.file;
        buttons.push(h('button', { type: 'button', class: 'primary', text: 'Retry', id: 'restore-retry',
          onclick: async () => {
            await api('DELETE', `/fzip/restore/${encodeURIComponent(ctx.id)}`).catch(() => {});
            this.remember(null);
            this.begin(file);
          } }));
      } else if (ctx && ctx.id) {
        buttons.push(h('button', { type: 'button', class: 'primary', text: 'Retry', id: 'restore-retry', onclick: () => this.watch(ctx.id) }));
      }
      if (ctx && ctx.id) buttons.push(this.deleteButton(ctx.id, 'Delete'));
      buttons.push(this.doneButton('Choose another file'));
      this.set('error', h('div', { class: 'card bad', role: 'alert' },
        h('h3', { text: title }), h('p', { text: message }), h('div', { class: 'actions' }, buttons)));
    },

    deleteButton(id, label) {
      const b = h('button', { type: 'button', class: 'quiet', text: label, dataset: { action: 'delete' } });
      b.addEventListener('click', async () => {
        const ok = await confirmAction('Delete this restore?', 'The restore job and its uploaded package are deleted. Your profile is not touched.', 'Delete restore');
        if (!ok) return;
        b.disabled = true;
        try {
          await api('DELETE', `/fzip/restore/${encodeURIComponent(id)}`);
          if (this.jobId === id) {
            if (this.poller) this.poller.stop();
            this.remember(null);
            this.idle();
          }
          notify('Restore deleted.');
        } catch (e) {
          if (e.status !== 401) notify(`The restore could not be deleted: ${e.message}`, 'bad');
        } finally {
          b.disabled = false;
          this.loadList();
        }
      });
      return b;
    },

    doneButton(label) {
      return h('button', { type: 'button', class: 'quiet', text: label, onclick: () => {
        if (this.poller) this.poller.stop();
        this.remember(null);
        this.file = null;
        this.idle();
      } });
    },

    async confirm(id, button) {
      button.disabled = true;
      try {
        await api('POST', `/fzip/restore/${encodeURIComponent(id)}/start`, {});
        this.watch(id);
      } catch (e) {
        button.disabled = false;
        if (e.code === 'PROFILE_NOT_EMPTY') this.notEmpty(e.body, id, (b) => this.confirm(id, b));
        else if (e.status !== 401) notify(`The restore could not start: ${e.message}`, 'bad');
      }
    },

    async cancel(id, button) {
      button.disabled = true;
      try {
        await api('POST', `/fzip/restore/${encodeURIComponent(id)}/cancel`, {});
      } catch (e) {
        if (e.status !== 401) notify(`Could not cancel: ${e.message}`, 'bad');
      }
      this.watch(id);
    },

    async retry(id, button) {
      button.disabled = true;
      try {
        await api('POST', `/fzip/restore/${encodeURIComponent(id)}/retry`, {});
        this.watch(id);
      } catch (e) {
        button.disabled = false;
        if (e.status !== 401) notify(`Could not retry: ${e.message}`, 'bad');
      }
    },

    // ---- the list of recent restores

    async loadList() {
      const list = $('restore-list');
      try {
        const data = await api('GET', '/fzip/restore?limit=5');
        const items = Array.isArray(data.restoreJobs) ? data.restoreJobs : [];
        if (!items.length) {
          list.replaceChildren(h('p', { class: 'empty', text: 'No restores yet.' }));
          return;
        }
        list.replaceChildren(...items.map((r) => {
          const id = r.restoreId || r.jobId;
          const current = id === this.jobId;
          return h('article', { class: 'job', dataset: { id, status: r.status || '' } },
            h('div', { class: 'job-title' }, statusBadge(r.status, r), h('span', { text: `Restore started ${when(r.createdAt)}` })),
            h('div', { class: 'job-actions' }, current
              ? h('span', { class: 'muted', text: 'Shown above' })
              : h('button', { type: 'button', class: 'quiet small', text: 'Open', onclick: () => this.watch(id) })),
            h('div', { class: 'job-meta' },
              typeof r.packageSize === 'number' ? h('span', { text: bytes(r.packageSize) }) : null,
              r.completedAt ? h('span', { text: `Finished ${when(r.completedAt)}` }) : null),
            r.error ? h('div', { class: 'job-extra' }, h('p', { class: 'error-text clamp', text: r.error, title: r.error })) : null);
        }));
      } catch (e) {
        if (e.status !== 401) list.replaceChildren(h('p', { class: 'error-text', text: `The restores could not be loaded: ${e.message}` }));
      }
    },
  };

  function warningsOf(v) {
    return v && Array.isArray(v.warnings) ? v.warnings.map(String) : [];
  }

  $('restores-refresh').addEventListener('click', () => restore.loadList());

  // ------------------------------------------------------------------------------------------
  // Profile: counts and charts (hand-drawn SVG)
  // ------------------------------------------------------------------------------------------

  const PALETTE = ['#0f766e', '#2563eb', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#65a30d', '#db2777'];
  const OTHER = '#94a3b8';
  const IN_COLOR = '#16a34a';
  const OUT_COLOR = '#dc2626';

  const profile = {
    data: null,
    summary: null,

    reset() {
      this.data = null;
      this.summary = null;
      for (const id of ['profile-counts', 'chart-cash', 'chart-spend']) $(id).replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
      $('cash-account').replaceChildren();
    },

    show() {
      this.load();
    },

    async load() {
      try {
        const [summary, analytics] = await Promise.all([api('GET', '/fzip/profile'), api('GET', '/fzip/profile/analytics')]);
        this.summary = summary;
        this.data = analytics;
        this.renderCounts();
        this.renderCharts();
      } catch (e) {
        if (e.status === 401) return;
        const msg = () => h('div', { class: 'card bad', role: 'alert' }, h('p', { class: 'error-text', text: `The profile could not be loaded: ${e.message}` }),
          h('button', { type: 'button', class: 'small', text: 'Try again', onclick: () => this.load() }));
        $('profile-counts').replaceChildren(msg());
        $('chart-cash').replaceChildren();
        $('chart-spend').replaceChildren();
      }
    },

    renderCounts() {
      const sm = this.summary || {};
      const stat = (label, value, sub, key) => h('div', { class: 'stat', dataset: { stat: key } },
        h('div', { class: 'value', text: num(value) }), h('div', { class: 'label', text: label }), sub ? h('div', { class: 'sub', text: sub }) : null);
      const cards = [
        stat('Accounts', sm.accounts, null, 'accounts'),
        stat('Transactions', sm.transactions, typeof sm.firstTransactionDate === 'number' ? `${day(sm.firstTransactionDate)} – ${day(sm.lastTransactionDate)}` : null, 'transactions'),
        stat('Categories', sm.categories, typeof sm.categoryRules === 'number' ? plural(sm.categoryRules, 'rule') : null, 'categories'),
        stat('File maps', sm.fileMaps, null, 'fileMaps'),
        stat('Statement files', sm.transactionFiles, typeof sm.fileBytes === 'number' ? `${bytes(sm.fileBytes)} stored` : null, 'transactionFiles'),
        stat('Analytics records', sm.analytics, null, 'analytics'),
      ];
      const nodes = [h('div', { class: 'stats' }, cards)];
      $('profile-counts').replaceChildren(...(sm.empty
        ? [h('p', { class: 'empty', text: 'Your profile is empty. Restore a backup into it from the Restore tab.' })]
        : nodes));
    },

    renderCharts() {
      const records = Array.isArray(this.data && this.data.records) ? this.data.records : [];
      const cash = records.filter((r) => r.analyticType === 'cash_flow' && r.data);
      const trends = records.filter((r) => r.analyticType === 'category_trends' && r.data);
      if (!cash.length && !trends.length) {
        const sm = this.summary || {};
        const content = sm.transactions > 0
          ? [h('p', { text: 'No analytics have been computed for this profile yet.' }),
            h('button', { type: 'button', class: 'primary', id: 'recompute', text: 'Compute analytics', onclick: (e) => this.recompute(e.currentTarget) })]
          : [h('p', { class: 'empty', text: 'No transactions, so nothing to chart yet.' })];
        $('chart-cash').replaceChildren(...content);
        $('chart-spend').replaceChildren();
        $('cash-account').replaceChildren();
        $('spend-currency-label').hidden = true;
        return;
      }
      this.renderCash(cash);
      this.renderSpending(trends);
    },

    async recompute(button) {
      button.disabled = true;
      button.textContent = 'Computing…';
      try {
        const r = await api('POST', '/fzip/profile/analytics/recompute', {});
        notify(`Analytics computed: ${plural(r.records, 'record')}.`);
        await this.load();
      } catch (e) {
        button.disabled = false;
        button.textContent = 'Compute analytics';
        if (e.status !== 401) notify(`The analytics could not be computed: ${e.message}`, 'bad');
      }
    },

    renderCash(cash) {
      const names = new Map((this.data.accounts || []).map((a) => [a.accountId, a]));
      const label = (id) => {
        if (id.startsWith('all:')) return `All accounts in ${id.slice(4)}`;
        const a = names.get(id);
        return a ? `${a.accountName}${a.currency ? ` (${a.currency})` : ''}` : id || 'Unknown account';
      };
      // Months per account, and per currency over all accounts (amounts of one currency only).
      const series = new Map();
      const add = (key, r) => {
        if (!series.has(key)) series.set(key, new Map());
        const months = series.get(key);
        const m = months.get(r.timePeriod) || { inflow: 0, outflow: 0, net: 0, count: 0, currency: r.data.currency || '' };
        m.inflow += Number(r.data.inflow) || 0;
        m.outflow += Number(r.data.outflow) || 0;
        m.net += Number(r.data.net) || 0;
        m.count += Number(r.data.transactionCount) || 0;
        months.set(r.timePeriod, m);
      };
      for (const r of cash) {
        add(r.accountId || '', r);
        if (r.data.currency && !r.data.mixedCurrencies) add(`all:${r.data.currency}`, r);
      }
      const count = (id) => [...(series.get(id) || new Map()).values()].reduce((n, m) => n + m.count, 0);
      const totals = [...series.keys()].filter((k) => k.startsWith('all:')).sort((a, b) => count(b) - count(a));
      // Every account, the busiest first (one without transactions has nothing to chart).
      const accounts = [...new Set([...series.keys(), ...names.keys()])].filter((k) => !k.startsWith('all:'))
        .sort((a, b) => count(b) - count(a) || label(a).localeCompare(label(b)));
      const select = $('cash-account');
      const previous = select.value;
      select.replaceChildren(
        h('optgroup', { label: 'Totals' }, totals.map((id) => h('option', { value: id, text: label(id) }))),
        h('optgroup', { label: 'Accounts' }, accounts.map((id) => h('option', { value: id, text: label(id) }))));
      const ids = [...totals, ...accounts];
      select.value = ids.includes(previous) ? previous : ids[0] || '';
      const draw = () => {
        const data = series.get(select.value) || new Map();
        const months = monthSpan([...data.keys()]);
        if (!months.length) {
          $('chart-cash').replaceChildren(h('p', { class: 'empty', text: `${label(select.value)}: no transactions yet.` }));
          return;
        }
        const none = { inflow: 0, outflow: 0, net: 0, count: 0, currency: '' };
        const rows = months.map((m) => data.get(m) || none);
        const currency = (rows.find((r) => r.currency) || {}).currency || '';
        const inflow = rows.map((r) => r.inflow);
        const outflow = rows.map((r) => r.outflow);
        const net = rows.map((r) => r.net);
        const chart = barChart($('chart-cash'), {
          months,
          series: [
            { name: 'Money in', color: IN_COLOR, values: inflow },
            { name: 'Money out', color: OUT_COLOR, values: outflow },
          ],
          line: { name: 'Net', values: net },
          describe: (i) => `${monthLabel(months[i])}: in ${moneyFormat.format(inflow[i])}, out ${moneyFormat.format(outflow[i])}, ` +
            `net ${moneyFormat.format(net[i])} ${currency} (${plural(rows[i].count, 'transaction')})`,
          label: `Monthly money in and out: ${label(select.value)}`,
        });
        const total = (xs) => xs.reduce((a, b) => a + b, 0);
        const legend = h('ul', { class: 'legend' },
          legendItem('Money in', IN_COLOR, `${moneyFormat.format(total(inflow))} ${currency}`),
          legendItem('Money out', OUT_COLOR, `${moneyFormat.format(total(outflow))} ${currency}`),
          legendItem('Net per month', '#1f2933', `${moneyFormat.format(total(net))} ${currency} over ${plural(months.length, 'month')}`, true));
        $('chart-cash').replaceChildren(chart, legend);
      };
      select.onchange = draw;
      draw();
      this.redrawCash = draw;
    },

    renderSpending(trends) {
      const names = new Map((this.data.categories || []).map((c) => [c.categoryId, c.name]));
      // Spending per currency, month and category: the negative totals.
      const perCurrency = new Map();
      for (const r of trends) {
        const currencies = (r.data && r.data.currencies) || {};
        for (const [cur, cats] of Object.entries(currencies)) {
          if (!perCurrency.has(cur)) perCurrency.set(cur, { total: 0, count: 0, months: new Map() });
          const c = perCurrency.get(cur);
          const month = c.months.get(r.timePeriod) || new Map();
          for (const [cat, v] of Object.entries(cats || {})) {
            const amount = -(Number(v && v.total) || 0);
            if (amount > 0) {
              month.set(cat, (month.get(cat) || 0) + amount);
              c.total += amount;
              c.count += Number(v && v.count) || 0;
            }
          }
          c.months.set(r.timePeriod, month);
        }
      }
      // The currency with the most spending transactions first (amounts of different
      // currencies cannot be compared).
      const currencies = [...perCurrency.entries()].filter(([, c]) => c.total > 0).sort((a, b) => b[1].count - a[1].count).map(([k]) => k);
      const select = $('spend-currency');
      const previous = select.value;
      select.replaceChildren(...currencies.map((c) => h('option', { value: c, text: c })));
      select.value = currencies.includes(previous) ? previous : currencies[0] || '';
      $('spend-currency-label').hidden = currencies.length < 2;
      const draw = () => {
        const c = perCurrency.get(select.value);
        if (!c) {
          $('chart-spend').replaceChildren(h('p', { class: 'empty', text: 'No spending recorded.' }));
          return;
        }
        const months = monthSpan([...c.months.keys()]);
        const totals = new Map();
        for (const month of c.months.values()) for (const [cat, v] of month) totals.set(cat, (totals.get(cat) || 0) + v);
        const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]);
        const top = ranked.slice(0, 6).map(([k]) => k);
        const rest = ranked.slice(6).map(([k]) => k);
        const nameOf = (id) => (id === 'uncategorized' ? 'Uncategorized' : names.get(id) || id);
        const series = top.map((cat, i) => ({
          name: nameOf(cat), color: PALETTE[i % PALETTE.length], values: months.map((m) => (c.months.get(m) || new Map()).get(cat) || 0),
        }));
        if (rest.length) {
          series.push({
            name: `Other (${plural(rest.length, 'category', 'categories')})`, color: OTHER,
            values: months.map((m) => rest.reduce((sum, cat) => sum + ((c.months.get(m) || new Map()).get(cat) || 0), 0)),
          });
        }
        const chart = barChart($('chart-spend'), {
          months,
          series,
          describe: (i) => {
            const parts = series.filter((x) => x.values[i] > 0).map((x) => `${x.name} ${moneyFormat.format(x.values[i])}`);
            return `${monthLabel(months[i])}: ${parts.length ? `${parts.join(', ')} ${select.value}` : 'no spending'}`;
          },
          label: `Monthly spending by category in ${select.value}`,
        });
        const legend = h('ul', { class: 'legend' }, series.map((x) => legendItem(x.name, x.color,
          `${moneyFormat.format(x.values.reduce((a, b) => a + b, 0))} ${select.value}`)));
        $('chart-spend').replaceChildren(chart, legend);
      };
      select.onchange = draw;
      draw();
      this.redrawSpend = draw;
    },
  };

  function legendItem(name, color, amount, line) {
    const swatch = h('span', { class: `swatch${line ? ' line' : ''}`, 'aria-hidden': 'true' });
    swatch.style.background = color;
    return h('li', null, swatch, h('span', { text: name }), amount ? h('span', { class: 'amount', text: amount }) : null);
  }

  /** Round tick values covering [min, max]. */
  function ticks(min, max, count) {
    let lo = Math.min(0, min);
    let hi = Math.max(0, max);
    if (hi === lo) hi = lo + 1;
    const raw = (hi - lo) / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    const out = [];
    for (let v = lo; v <= hi + step / 2; v += step) out.push(Math.abs(v) < step / 1e6 ? 0 : v);
    return out;
  }

  /**
   * Bars per month: positive values stack up from zero, negative ones down; an optional line
   * (with dots) on top. Each month is a group with a <title>, so hovering shows the numbers.
   */
  function barChart(container, { months, series, line, describe, label }) {
    const width = Math.max(300, Math.floor(container.clientWidth || 700));
    const height = width < 500 ? 220 : 280;
    const m = { top: 12, right: 10, bottom: 30, left: width < 500 ? 44 : 58 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const n = Math.max(1, months.length);
    let maxUp = 0;
    let maxDown = 0;
    for (let i = 0; i < months.length; i += 1) {
      let up = 0;
      let down = 0;
      for (const x of series) {
        if (x.values[i] > 0) up += x.values[i];
        else down += x.values[i];
      }
      maxUp = Math.max(maxUp, up);
      maxDown = Math.min(maxDown, down);
      if (line) {
        maxUp = Math.max(maxUp, line.values[i]);
        maxDown = Math.min(maxDown, line.values[i]);
      }
    }
    const t = ticks(maxDown, maxUp, height < 250 ? 4 : 5);
    const lo = t[0];
    const hi = t[t.length - 1];
    const y = (v) => m.top + plotH - ((v - lo) / (hi - lo)) * plotH;
    const band = plotW / n;
    const barW = Math.max(1, Math.min(42, band * 0.72));
    const x = (i) => m.left + band * i + band / 2;

    const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label });
    svg.append(s('title', { text: label }));
    for (const v of t) {
      svg.append(s('line', { class: v === 0 ? 'axis' : 'grid', x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
      svg.append(s('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: compactFormat.format(v) }));
    }
    const every = Math.ceil(n / Math.max(1, Math.floor(plotW / 58)));
    months.forEach((month, i) => {
      const g = s('g', { class: 'month', dataset: { month } });
      g.append(s('title', { text: describe(i) }));
      g.append(s('rect', { class: 'hit', x: m.left + band * i, y: m.top, width: band, height: plotH }));
      let up = 0;
      let down = 0;
      for (const ser of series) {
        const v = ser.values[i];
        if (!v) continue;
        const from = v > 0 ? up : down;
        const to = from + v;
        if (v > 0) up = to;
        else down = to;
        const top = y(Math.max(from, to));
        const h0 = Math.max(0.5, Math.abs(y(from) - y(to)));
        g.append(s('rect', { x: x(i) - barW / 2, y: top, width: barW, height: h0, fill: ser.color, rx: Math.min(2, barW / 4) }));
      }
      svg.append(g);
      if (i % every === 0) {
        svg.append(s('text', { x: x(i), y: height - m.bottom + 16, 'text-anchor': 'middle', text: monthLabel(month) }));
      }
    });
    if (line && months.length) {
      const points = line.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      svg.append(s('polyline', { class: 'net', points }));
      line.values.forEach((v, i) => svg.append(s('circle', { class: 'net-dot', cx: x(i), cy: y(v), r: n > 40 ? 1.5 : 2.5 })));
    }
    return svg;
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if ($('view-profile').hidden || !profile.data) return;
      if (profile.redrawCash) profile.redrawCash();
      if (profile.redrawSpend) profile.redrawSpend();
    }, 150);
  });

  $('profile-refresh').addEventListener('click', () => profile.load());

  // ------------------------------------------------------------------------------------------
  // Start
  // ------------------------------------------------------------------------------------------

  const saved = sessionStorage.getItem(TOKEN_KEY);
  const claims = saved ? claimsOf(saved) : null;
  if (saved && claims && typeof claims.sub === 'string' && !(typeof claims.exp === 'number' && claims.exp * 1000 < Date.now())) {
    token = saved;
    showSignedIn(claims);
  } else {
    signOut(saved ? 'Your token expired. Sign in again.' : '');
  }
})();
