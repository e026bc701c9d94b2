/* tradewarden dashboard: plain JavaScript, no build step, no network beyond this server.
 *
 * Reads the REST API (/api/..., see /docs) with the bearer token the person typed in
 * (kept in this tab's sessionStorage only, sent as "Authorization: Bearer ...", never in
 * a URL). Polls every few seconds; a section is redrawn only when its data changed, so
 * an expanded decision or a scrolled table stays as it is. Every text from the server is
 * set with textContent (never parsed as HTML).
 */
'use strict';

(function () {
  const TOKEN_KEY = 'tradewarden.token';
  const FAST_MS = 5000;          // status, queue, positions, decisions
  const SLOW_EVERY = 6;          // costs, runs, equity: every 6th poll (30 s)
  const DECISIONS_LIMIT = 50;
  const COST_DAYS = 7;

  const $ = (id) => document.getElementById(id);
  const last = {};               // section -> JSON text last drawn
  let timer = null;
  let polls = 0;
  let loggedIn = false;
  let busy = false;
  let again = false;             // a refresh asked for while one was running
  let chartsWanted = false;      // the charts section is (nearly) on screen
  let plotly = null;             // the promise of plotly.js, loaded when first wanted

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function td(text, cls, label) {
    return el('td', { class: cls || null, 'data-label': label || null, text: text === null || text === undefined ? '-' : String(text) });
  }

  function num(s) { return s === null || s === undefined || s === '' ? null : Number(s); }

  function money(s, digits) {
    const x = num(s);
    if (x === null || !Number.isFinite(x)) return '-';
    const d = digits === undefined ? 2 : digits;
    return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  }

  function signed(s) {
    const x = num(s);
    if (x === null || !Number.isFinite(x)) return '-';
    return (x > 0 ? '+' : '') + money(s);
  }

  function price(s) {
    const x = num(s);
    if (x === null || !Number.isFinite(x)) return '-';
    if (Math.abs(x) >= 1) return money(s, 2);
    return x.toPrecision(4);
  }

  function qty(s) {
    if (s === null || s === undefined) return '-';
    const t = String(s);
    return t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t;
  }

  function pct(x, digits) { return x === null || x === undefined ? '-' : Number(x).toFixed(digits === undefined ? 1 : digits) + ' %'; }

  function when(iso) {         // "2026-11-29T08:00:00Z" -> "2026-11-29 08:00Z"
    if (!iso) return '-';
    return String(iso).replace('T', ' ').replace(/:\d\d(\.\d+)?(Z|\+00:00)$/, 'Z');
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return 'none recorded';
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return s + ' s ago';
    if (s < 7200) return Math.floor(s / 60) + ' min ago';
    if (s < 172800) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function changed(key, data) {
    const text = JSON.stringify(data);
    if (last[key] === text) return false;
    last[key] = text;
    return true;
  }

  function fill(tbody, rows, emptyId) {
    tbody.replaceChildren(...rows);
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  // ------------------------------------------------------------------ notices
  function notice(text, kind) {
    const box = $('notice');
    if (!text) { box.hidden = true; box.replaceChildren(); return; }
    box.className = kind === 'info' ? 'info' : '';
    box.dataset.kind = kind || 'error';
    box.replaceChildren(el('span', { text }), ' ',
      el('button', { type: 'button', class: 'close', 'aria-label': 'dismiss', text: '×',
                     onclick: () => notice(null) }));
    box.hidden = false;
  }

  // ------------------------------------------------------------------ the API
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method: opts.method || 'GET', headers, cache: 'no-store', credentials: 'omit' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch('api/' + path, init);    // relative: works under a reverse-proxy prefix
    } catch (err) {
      throw new ApiError(0, 'the server does not answer (' + err.message + ')');
    }
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.status === 401) {
      askToken(token ? 'The server refused the token: ' + ((data && data.error) || 'wrong token') + '.'
                     : 'This server needs its API token.');
      throw new ApiError(401, (data && data.error) || 'token needed');
    }
    if (!res.ok) {
      throw new ApiError(res.status, (data && data.error) || (res.status + ' ' + res.statusText));
    }
    return data;
  }

  // ------------------------------------------------------------------ login
  function askToken(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    loggedIn = false;
    stopPolling();
    $('dashboard').hidden = true;
    $('btn-logout').hidden = true;
    $('btn-pause').hidden = true;
    $('btn-resume').hidden = true;
    $('login').hidden = false;
    $('login-message').textContent = message || '';
    for (const k of Object.keys(last)) delete last[k];
    setAlive('unknown', 'signed out');
    $('login-token').focus();
  }

  function onLogin(event) {
    event.preventDefault();
    const input = $('login-token');
    const token = input.value.trim();
    if (!token) { $('login-message').textContent = 'Type the token.'; return; }
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = '';
    $('login-message').textContent = 'Checking…';
    refresh(true);
  }

  function logout() {
    askToken('Signed out. The token was removed from this tab.');
  }

  // ------------------------------------------------------------------ status bar
  function setAlive(state, text) {
    const node = $('st-alive');
    node.dataset.state = state;
    node.querySelector('.text').textContent = text;
  }

  function drawStatus(st) {
    const health = { ok: ['ok', 'alive'], stale: ['warn', 'heartbeat stale'], down: ['bad', 'daemon down'] }[st.health] || ['unknown', st.health];
    setAlive(health[0], health[1] + (st.pid ? ' (pid ' + st.pid + ')' : ''));
    $('st-heartbeat').textContent = st.heartbeat ? age(st.heartbeat_age_seconds) : 'none recorded';
    const deps = st.deployments || [];
    let autonomy = '-';
    if (deps.length === 1) autonomy = 'L' + deps[0].autonomy_level + ' ' + deps[0].autonomy;
    else if (deps.length > 1) autonomy = deps.map((d) => d.name + ' L' + d.autonomy_level).join(', ');
    $('st-autonomy').textContent = autonomy;
    const paused = $('st-paused');
    const killed = deps.filter((d) => d.kill_switch).map((d) => d.name);
    const some = deps.filter((d) => d.paused).map((d) => d.name);
    if (killed.length) { paused.dataset.state = 'killed'; paused.textContent = 'KILL SWITCH: ' + killed.join(', '); }
    else if (st.paused) { paused.dataset.state = 'paused'; paused.textContent = 'PAUSED'; }
    else if (some.length) { paused.dataset.state = 'paused'; paused.textContent = 'paused: ' + some.join(', '); }
    else if (deps.length) { paused.dataset.state = 'running'; paused.textContent = 'not paused'; }
    else { paused.dataset.state = 'unknown'; paused.textContent = 'no deployments'; }
    $('st-queue').textContent = String(st.queue_depth);
    $('st-activity').textContent = st.activity || '-';
    $('st-updated').textContent = 'updated ' + when(st.time);
    $('btn-pause').hidden = !deps.length || (st.paused && !killed.length) || killed.length === deps.length;
    $('btn-resume').hidden = !(some.length || killed.length);
    fillCurveChoices(deps.map((d) => d.name), null);
  }

  // ------------------------------------------------------------------ queue
  function drawQueue(q) {
    const rows = q.approvals.map((a) => {
      const intent = a.intent || {};
      const why = a.reasoning || intent.signal || '';
      let acts;
      if (a.command_pending) {
        acts = el('td', { class: 'acts', text: a.command_pending + ' queued: the engine acts before its next bar' });
      } else {
        acts = el('td', { class: 'acts' }, el('span', { class: 'buttons' },
          el('button', { type: 'button', class: 'approve', dataset: { approval: a.id },
                         onclick: (e) => approve(a, e.currentTarget) }, 'Approve'),
          el('button', { type: 'button', class: 'reject', dataset: { approval: a.id },
                         onclick: (e) => reject(a, e.currentTarget) }, 'Reject')));
      }
      return el('tr', { dataset: { approval: a.id } },
        td(a.id, 'id', 'approval'), td(a.deployment, null, 'deployment'), td(when(a.time), null, 'queued'),
        td(a.symbol), td(a.action), td(qty(intent.quantity), 'num', 'qty'), td(price(intent.price), 'num', '@'),
        el('td', { class: 'why', text: why + (a.decision_id ? ' (decision ' + a.decision_id + ')' : '') }),
        acts);
    });
    fill($('queue-table').tBodies[0], rows, 'queue-empty');
    $('queue-count').textContent = rows.length ? '(' + rows.length + ')' : '';
  }

  async function act(label, path, body, button) {
    if (button) button.disabled = true;
    try {
      const out = await api(path, { method: 'POST', body });
      notice(out.message, 'info');
    } catch (err) {
      if (err.status !== 401) notice(label + ': ' + err.message);
    } finally {
      if (button) button.disabled = false;
    }
    if (loggedIn) await refresh(false);      // (after a 401 the token form is up instead)
  }

  function approve(a, button) {
    return act('approve ' + a.id, 'decisions/' + a.id + '/approve', {}, button);
  }

  async function reject(a, button) {
    const reason = await askReason('Reject approval ' + a.id,
      (a.action || '') + ' ' + (a.symbol || '') + (a.deployment ? ' (' + a.deployment + ')' : ''), true);
    if (reason === null) return;
    await act('reject ' + a.id, 'decisions/' + a.id + '/reject', { reason }, button);
  }

  async function pause() {
    const reason = await askReason('Pause every deployment', 'No new entries until resumed; exits and protective orders go on.', true);
    if (reason === null) return;
    await act('pause', 'daemon/pause', { reason }, $('btn-pause'));
  }

  async function resume() {
    const ok = await askReason('Resume every deployment', 'Lifts the pause and the kill switch: new entries are allowed again.', false);
    if (ok === null) return;
    await act('resume', 'daemon/resume', {}, $('btn-resume'));
  }

  // a modal asking for a reason (required) or only for a confirmation
  function askReason(title, what, required) {
    const dialog = $('reason-dialog');
    const text = $('reason-text');
    $('reason-title').textContent = title;
    $('reason-what').textContent = what || '';
    text.value = '';
    text.required = required;
    text.hidden = !required;
    dialog.querySelector('label[for="reason-text"]').hidden = !required;
    return new Promise((resolve) => {
      const form = $('reason-form');
      function done(value) {
        form.removeEventListener('submit', onSubmit);
        $('reason-cancel').removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        resolve(value);
      }
      function onSubmit(event) {
        event.preventDefault();
        if (!required) { done(''); return; }
        const value = text.value.trim();
        if (!value) { text.setCustomValidity('Say why: the reason is recorded.'); text.reportValidity(); return; }
        text.setCustomValidity('');
        done(value);
      }
      function onCancel(event) { if (event) event.preventDefault(); done(null); }
      form.addEventListener('submit', onSubmit);
      $('reason-cancel').addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      (required ? text : $('reason-ok')).focus();
    });
  }

  // ------------------------------------------------------------------ positions
  function drawPositions(p) {
    const rows = p.positions.map((x) => {
      const light = el('td', { class: 'light', dataset: { light: x.risk }, title: (x.risk_reasons || []).join('; ') || 'within limits' },
        el('span', { class: 'dot', 'aria-hidden': 'true' }), el('span', { class: 'text', text: x.risk }));
      const pnl = num(x.unrealized_pnl);
      return el('tr', { dataset: { light: x.risk, symbol: x.symbol } },
        light, td(x.deployment), td(x.symbol), td(x.state), td(qty(x.quantity), 'num'),
        td(price(x.entry_price), 'num'), td(price(x.mark), 'num'), td(money(x.market_value), 'num'),
        td(signed(x.unrealized_pnl) + ' ' + x.quote, 'num ' + (pnl > 0 ? 'pos' : pnl < 0 ? 'neg' : '')),
        td(price(x.stop_loss), 'num'), td(pct(x.stop_distance_pct), 'num'),
        td(price(x.take_profit), 'num'), td(when(x.entry_time)));
    });
    fill($('positions-table').tBodies[0], rows, 'positions-empty');
  }

  // ------------------------------------------------------------------ decisions
  const openDecisions = new Set();

  function drawDecisions(d) {
    const items = d.decisions.map((x) => {
      const summary = el('summary', {},
        el('span', { class: 'meta', text: when(x.time) + ' ' + (x.deployment || '') + ' ' }),
        el('strong', { text: x.action }), ' ', x.symbol || '',
        x.confidence === null || x.confidence === undefined ? '' : ' (' + Number(x.confidence).toFixed(2) + ')',
        ' ', el('span', { class: 'tag', text: x.outcome }));
      const facts = el('dl', {},
        el('dt', { text: 'reasoning' }), el('dd', { text: x.reasoning || '-' }),
        el('dt', { text: 'key factors' }), el('dd', { text: (x.key_factors || []).join('; ') || '-' }),
        el('dt', { text: 'verdicts' }), el('dd', { text: (x.verdicts || []).map((v) => v.verdict + (v.reason ? ': ' + v.reason : '')).join('; ') || '-' }),
        el('dt', { text: 'event' }), el('dd', { text: x.event_kind + ', L' + x.autonomy_level + ', ' + x.reasoner }));
      const audit = el('div', { class: 'audit' });
      const details = el('details', { dataset: { decision: x.id } }, summary, el('div', { class: 'body' }, facts, audit));
      details.addEventListener('toggle', () => {
        if (details.open) { openDecisions.add(x.id); loadAudit(x.id, audit); } else openDecisions.delete(x.id);
      });
      if (openDecisions.has(x.id)) details.open = true;
      return el('li', {}, details);
    });
    $('decision-list').replaceChildren(...items);
    $('decisions-empty').hidden = items.length > 0;
    const filtered = $('filter-symbol').value.trim() || $('filter-action').value.trim();
    $('decisions-empty').textContent = filtered ? 'No decision matches the filter.' : 'No decisions recorded.';
  }

  // the log's filters (symbol, action: exact, as GET /api/decisions takes them)
  function decisionsPath() {
    const q = new URLSearchParams({ limit: String(DECISIONS_LIMIT) });
    for (const name of ['symbol', 'action']) {
      const value = $('filter-' + name).value.trim();
      if (value) q.set(name, name === 'symbol' ? value.toUpperCase() : value);
    }
    return 'decisions?' + q.toString();
  }

  async function filterDecisions(event) {
    if (event.type === 'submit') event.preventDefault();
    else await new Promise((r) => setTimeout(r, 0));   // a reset clears the inputs after its event
    try {
      const data = await api(decisionsPath());
      delete last.decisions;
      changed('decisions', data);
      drawDecisions(data);
    } catch (err) {
      if (err.status !== 401) notice('decisions: ' + err.message);
    }
  }

  async function loadAudit(id, box) {
    if (box.dataset.loaded) return;
    box.replaceChildren(el('p', { class: 'empty', text: 'loading the audit…' }));
    try {
      const a = await api('decisions/' + encodeURIComponent(id));
      const dec = a.decision || {};
      const out = dec.output || {};
      box.replaceChildren(
        el('dl', {},
          el('dt', { text: 'risks considered' }), el('dd', { text: (out.risks_considered || []).join('; ') || '-' }),
          el('dt', { text: 'outcome' }), el('dd', { text: a.outcome }),
          ...(a.approvals || []).flatMap((p) => [el('dt', { text: 'approval ' + p.id }),
            el('dd', { text: p.status + (p.acted_by ? ' by ' + p.acted_by : '') + (p.acted_at ? ' at ' + when(p.acted_at) : '') + (p.reason ? ' (' + p.reason + ')' : '') })]),
          ...(a.commands || []).flatMap((c) => [el('dt', { text: 'command ' + c.id }),
            el('dd', { text: c.kind + ' by ' + c.actor + ' at ' + when(c.created_at) + ': ' + c.status + (c.result ? ', ' + c.result : '') })])),
        el('details', { class: 'raw' }, el('summary', { text: 'output and context sent (JSON)' }),
          el('pre', { text: JSON.stringify(dec.output, null, 2) }),
          el('pre', { text: JSON.stringify(dec.context, null, 2) })));
      box.dataset.loaded = '1';
    } catch (err) {
      box.replaceChildren(el('p', { class: 'empty', text: 'audit: ' + err.message }));
    }
  }

  // ------------------------------------------------------------------ costs
  function drawCosts(c) {
    const rows = c.rows.map((r) => el('tr', {},
      td(r.day), td(r.model), td(r.call_type), td(r.calls, 'num'),
      td(r.input_tokens, 'num'), td(r.output_tokens, 'num'), td(money(r.cost_usd, 4), 'num')));
    fill($('costs-table').tBodies[0], rows, 'costs-empty');
    const t = c.total || {};
    $('costs-total').textContent = '(' + COST_DAYS + ' days: ' + (t.calls || 0) + ' calls, ' + money(t.cost_usd || 0, 4) + ' USD)';
  }

  // ------------------------------------------------------------------ thought log
  // every model call of a UTC day by cycle (GET /api/thoughts; default: the server's today)
  function thoughtsPath() {
    const day = $('thoughts-day').value;
    return 'thoughts' + (day ? '?day=' + encodeURIComponent(day) : '');
  }

  function drawThoughts(t) {
    const rows = t.calls.map((c) => el('tr', {},
      td(c.time.slice(11, 19)), td(c.deployment || c.deployment_id), td(c.cycle + ' #' + c.attempt),
      td(c.call_type), td(c.model), td(c.status), td(c.action || c.outcome),
      td((c.input_tokens + c.cache_read_tokens + c.cache_write_tokens) + '/' + c.output_tokens, 'num'),
      td(money(c.cost_usd, 4), 'num'), td(c.thought)));
    fill($('thoughts-table').tBodies[0], rows, 'thoughts-empty');
    $('thoughts-total').textContent = '(' + t.day + ': ' + t.calls.length + ' calls, ' + money(t.cost_usd, 4) + ' USD)';
  }

  async function showThoughts(event) {
    if (event) event.preventDefault();
    try {
      const data = await api(thoughtsPath());
      delete last.thoughts;
      changed('thoughts', data);
      drawThoughts(data);
    } catch (err) {
      if (err.status !== 401) notice('thought log: ' + err.message);
    }
  }

  // ------------------------------------------------------------------ runs and reports
  function drawRuns(r) {
    const rows = r.runs.map((x) => el('tr', { dataset: { run: x.run_id } },
      td(x.run_id, 'id'), td(x.mode), td(x.status), td(x.strategy), td((x.symbols || []).join(', ')),
      td(x.timeframe), td(when(x.started_at)),
      el('td', { class: 'acts' }, el('span', { class: 'buttons' },
        el('button', { type: 'button', onclick: () => showReport(x) }, 'Report'),
        el('button', { type: 'button', onclick: () => { fillCurveChoices(null, x.run_id); $('curve-select').value = 'run:' + x.run_id; loadEquity(true); $('charts').scrollIntoView(); } }, 'Equity')))));
    fill($('runs-table').tBodies[0], rows, 'runs-empty');
    fillCurveChoices(null, null, r.runs.map((x) => x.run_id));
  }

  function flatten(obj, prefix, out, depth) {
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? prefix + '.' + k : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        if (depth < 2) flatten(v, key, out, depth + 1);
      } else if (!Array.isArray(v)) {
        out.push([key, v]);
      }
    }
    return out;
  }

  // the report's headline figures: [key in the report JSON, label, decimals]
  const HEADLINE = [
    ['verdict', 'verdict'], ['run.status', 'status'], ['run.strategy', 'strategy'],
    ['run.timeframe', 'timeframe'], ['run.range_start', 'from'], ['run.range_end', 'to'],
    ['trades.closed_trades', 'trades closed', 0], ['trades.win_rate_pct', 'win rate %', 1],
    ['trades.net_pnl', 'net PnL', 2], ['trades.profit_factor', 'profit factor', 2],
    ['trades.expectancy', 'expectancy', 2], ['trades.fees', 'fees', 2],
    ['risk.total_return_pct', 'total return %', 2], ['risk.max_drawdown_pct', 'max drawdown %', 2],
    ['risk.final_equity', 'final equity', 2], ['risk.sharpe', 'Sharpe', 2], ['risk.sortino', 'Sortino', 2],
  ];

  function figure(v, digits) {
    if (v === null || v === undefined) return '-';
    if (typeof v === 'number' && digits !== undefined) return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    if (typeof v === 'number' && !Number.isInteger(v)) return v.toFixed(4);
    return String(v);
  }

  let reportUrl = null;
  async function showReport(run) {
    const box = $('run-report');
    $('run-report-title').textContent = 'Report of run ' + run.run_id;
    box.hidden = false;
    const body = $('run-report-table').tBodies[0];
    body.replaceChildren(el('tr', {}, td('loading…')));
    try {
      const rep = await api('runs/' + encodeURIComponent(run.run_id));
      const flat = new Map(flatten(rep, '', [], 0));
      const rows = HEADLINE.filter(([k]) => flat.has(k)).map(([k, label, digits]) =>
        el('tr', {}, el('th', { text: label }), td(figure(flat.get(k), digits), 'num')));
      for (const g of rep.gates || []) {
        rows.push(el('tr', { dataset: { gate: g.passed ? 'pass' : 'fail' } },
          el('th', { text: 'gate ' + g.name }),
          td((g.passed ? 'PASS' : 'FAIL') + ' (' + figure(g.value, 2) + ' vs ' + g.threshold + ')', 'num')));
      }
      body.replaceChildren(...rows);
      $('run-report-all').tBodies[0].replaceChildren(...[...flat].map(([k, v]) =>
        el('tr', {}, td(k), td(figure(v, 4), 'num'))));
      if (reportUrl) URL.revokeObjectURL(reportUrl);
      reportUrl = URL.createObjectURL(new Blob([JSON.stringify(rep, null, 2)], { type: 'application/json' }));
      const link = $('run-report-json');
      link.href = reportUrl;
      link.download = 'report-' + run.run_id + '.json';
    } catch (err) {
      body.replaceChildren(el('tr', {}, td('report: ' + err.message)));
    }
    const trades = $('run-trades-table');
    try {
      const t = await api('runs/' + encodeURIComponent(run.run_id) + '/trades');
      trades.tHead.replaceChildren(el('tr', {}, ...['symbol', 'quantity', 'entry', 'entry price', 'exit', 'exit price', 'pnl', 'reason'].map((h) => el('th', { text: h }))));
      trades.tBodies[0].replaceChildren(...t.trades.map((x) => el('tr', {},
        td(x.symbol), td(qty(x.quantity), 'num'), td(when(x.entry_time)), td(price(x.entry_price), 'num'),
        td(when(x.exit_time)), td(price(x.exit_price), 'num'), td(signed(x.pnl), 'num'), td(x.exit_reason))));
      $('run-trades').querySelector('summary').textContent = 'trades (' + t.trades.length + ')';
    } catch (err) {
      trades.tBodies[0].replaceChildren(el('tr', {}, td('trades: ' + err.message)));
    }
  }

  // ------------------------------------------------------------------ equity and drawdown
  const curves = { deployments: [], runs: [] };

  function fillCurveChoices(deployments, extraRun, runs) {
    if (deployments) curves.deployments = deployments;
    if (runs) curves.runs = runs;
    if (extraRun && !curves.runs.includes(extraRun)) curves.runs = [extraRun, ...curves.runs];
    const select = $('curve-select');
    const want = ['deployment:', 'run:'];
    const options = [...curves.deployments.map((n) => [want[0] + n, 'deployment ' + n]),
                     ...curves.runs.map((r) => [want[1] + r, 'run ' + r])];
    const key = JSON.stringify(options);
    if (select.dataset.options === key) return;
    const current = select.value;
    select.replaceChildren(...options.map(([v, label]) => el('option', { value: v, text: label })));
    select.dataset.options = key;
    if (options.some(([v]) => v === current)) select.value = current;
  }

  // plotly.js (several MB) is loaded only once the charts come into view: a phone that
  // never scrolls there never downloads it
  function loadPlotly() {
    if (window.Plotly) return Promise.resolve();
    if (!plotly) {
      plotly = new Promise((resolve, reject) => {
        const script = el('script', { src: 'static/plotly.min.js' });
        script.addEventListener('load', resolve);
        script.addEventListener('error', () => { plotly = null; script.remove(); reject(new Error('the chart library did not load')); });
        document.head.append(script);
      });
    }
    return plotly;
  }

  async function loadEquity(force) {
    if (!chartsWanted) return;
    const choice = $('curve-select').value;
    if (!choice) { $('charts-empty').hidden = false; return; }
    const [kind, name] = [choice.slice(0, choice.indexOf(':')), choice.slice(choice.indexOf(':') + 1)];
    const query = kind === 'run' ? 'run_id=' + encodeURIComponent(name) : 'deployment=' + encodeURIComponent(name);
    let eq;
    try {
      eq = await api('equity?' + query);
    } catch (err) {
      if (err.status !== 401) { $('charts-empty').textContent = 'equity: ' + err.message; $('charts-empty').hidden = false; }
      return;
    }
    if (!changed('equity:' + choice, eq) && !force) return;
    try {
      await loadPlotly();
    } catch (err) {
      delete last['equity:' + choice];
      $('charts-empty').textContent = err.message;
      $('charts-empty').hidden = false;
      return;
    }
    drawEquity(eq);
  }

  function drawEquity(eq) {
    const series = (eq.series || []).filter((s) => s.points.length);
    const empty = $('charts-empty');
    if (!series.length || typeof Plotly === 'undefined') {
      $('chart-captions').hidden = true;
      empty.textContent = typeof Plotly === 'undefined' ? 'The chart library did not load.' : 'No equity recorded yet.';
      empty.hidden = false;
      return;
    }
    empty.hidden = true;
    const eqTraces = [];
    const ddTraces = [];
    // with several accounts the total is drawn and each account is one click away in
    // the legend (on one axis the accounts would flatten the total's moves)
    const hasTotal = series.length > 1 && series.some((s) => s.account === 'total');
    for (const s of series) {
      const x = s.points.map((p) => new Date(p.ts * 1000));
      const y = s.points.map((p) => Number(p.equity));
      let peak = -Infinity;
      const dd = y.map((v) => { peak = Math.max(peak, v); return peak > 0 ? (v - peak) / peak * 100 : 0; });
      const visible = !hasTotal || s.account === 'total' ? true : 'legendonly';
      eqTraces.push({ x, y, name: s.account, visible, type: 'scatter', mode: 'lines', line: { width: 1.5 } });
      ddTraces.push({ x, y: dd, name: s.account, visible, type: 'scatter', mode: 'lines', fill: 'tozeroy', line: { width: 1 } });
    }
    const base = {
      margin: { l: 64, r: 8, t: 8, b: 30 }, font: { size: 11 }, hovermode: 'x unified',
      showlegend: series.length > 1, legend: { orientation: 'h', x: 0, y: 1, yanchor: 'bottom' },
      paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)',
      xaxis: { type: 'date', gridcolor: '#e6e6e3' },
    };
    if (series.length > 1) base.margin.t = 28;
    const config = { displayModeBar: false, responsive: true, displaylogo: false };
    $('chart-captions').hidden = false;       // shown before drawing: plotly sizes to it
    $('chart-equity-title').textContent = 'equity (' + eq.quote + ')';
    Plotly.react('chart-equity', eqTraces, { ...base, yaxis: { gridcolor: '#e6e6e3', tickformat: ',.0f' } }, config);
    Plotly.react('chart-drawdown', ddTraces, { ...base, yaxis: { gridcolor: '#e6e6e3', ticksuffix: ' %' } }, config);
  }

  // the charts are wanted once they come into view; watched from the first complete
  // drawing on (before it, the empty sections would put them on the first screen)
  let chartsObserver = null;
  function watchCharts() {
    if (chartsObserver) return;
    chartsObserver = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !chartsWanted) {
        chartsWanted = true;
        if (loggedIn) loadEquity(true);
      }
    });
    chartsObserver.observe($('charts'));
  }

  // ------------------------------------------------------------------ polling
  async function section(key, path, draw) {
    const data = await api(path);
    if (changed(key, data)) draw(data);
    return data;
  }

  async function refresh(full) {
    if (busy) { again = true; return; }
    busy = true;
    try {
      await section('status', 'status', drawStatus);
      if (!loggedIn) {
        loggedIn = true;
        $('login').hidden = true;
        $('dashboard').hidden = false;
        $('btn-logout').hidden = !sessionStorage.getItem(TOKEN_KEY);
        full = true;
      }
      await Promise.all([
        section('queue', 'queue', drawQueue),
        section('positions', 'positions', drawPositions),
        section('decisions', decisionsPath(), drawDecisions),
      ]);
      if (full || polls % SLOW_EVERY === 0) {
        await Promise.all([
          section('costs', 'costs?days=' + COST_DAYS, drawCosts),
          section('thoughts', thoughtsPath(), drawThoughts),
          section('runs', 'runs', drawRuns),
        ]);
        await loadEquity(false);
        watchCharts();
      }
      if ($('notice').dataset.kind === 'poll') notice(null);
      schedule();
    } catch (err) {
      if (err.status === 401) return;        // the login form is up; polling stopped
      delete last.status;                    // redraw the status bar at the next answer
      setAlive('bad', err.status ? 'server error ' + err.status : 'no answer');
      notice(err.message + ' (retrying every ' + FAST_MS / 1000 + ' s)', 'error');
      $('notice').dataset.kind = 'poll';
      schedule();
    } finally {
      busy = false;
      polls += 1;
    }
    if (again) {
      again = false;
      await refresh(true);
    }
  }

  function schedule() {
    stopPolling();
    timer = setTimeout(() => { if (!document.hidden) refresh(false); else schedule(); }, FAST_MS);
  }

  function stopPolling() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  // ------------------------------------------------------------------ start
  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', onLogin);
    $('btn-logout').addEventListener('click', logout);
    $('btn-refresh').addEventListener('click', () => refresh(true));
    $('btn-pause').addEventListener('click', pause);
    $('btn-resume').addEventListener('click', resume);
    $('run-report-close').addEventListener('click', () => { $('run-report').hidden = true; });
    $('curve-select').addEventListener('change', () => loadEquity(true));
    $('decision-filter').addEventListener('submit', filterDecisions);
    $('decision-filter').addEventListener('reset', filterDecisions);
    $('thoughts-form').addEventListener('submit', showThoughts);
    document.addEventListener('visibilitychange', () => { if (!document.hidden && loggedIn) refresh(false); });

    refresh(true);
  });
}());
